/**
 * mammotools: import annotations from GeoJSON into the current image.
 *
 * The reverse of export_annotations.groovy: reads
 *
 *     <project folder>/annotations/<original image name without its final extension>.geojson
 *     (or, if that is absent, the .json file with the same stem)
 *
 * and adds its objects to the current image. Images without such a file are skipped.
 * Same file name rule as export_annotations.groovy: the image's *original* name
 * (ProjectImageEntry.getOriginalImageName()), also when QuPath's "Mask image names in projects"
 * preference is on (getImageName() then returns a random UUID, which matches no file).
 *
 * Works with QuPath 0.3, 0.4, 0.5 and 0.6. Needs an open project.
 *
 * Saving - the objects are only added in memory; they reach the image's data.qpdata when:
 *   GUI "Run for project":            QuPath saves each image after the script (the
 *                                     "(without save)" / "(without saving)" variant does not);
 *   GUI "Run" on the open image:      use File > Save as usual;
 *   headless:                         add --save (without it nothing is written):
 *       QuPath/bin/QuPath script --project=/path/to/project.qpproj --save import_annotations.groovy
 *   (see docs/qupath-scripts.md for the executable on Windows and macOS).
 * Set saveInScript = true only for a headless run without --save.
 *
 * If an image's data.qpdata exists but QuPath could not read it (QuPath then opens the image
 * with no objects), the image is skipped with a WARNING, and the file is copied aside to
 * data.qpdata.unreadable-<time>: QuPath replaces data.qpdata whenever it saves the image
 * (after "Run for project", or with --save). Fix or restore that file, then import again.
 *
 * Running it twice without deleteExisting = true adds the objects twice.
 */

import java.nio.file.Files
import java.nio.file.Path
import java.nio.file.StandardCopyOption

// ---- Options ---------------------------------------------------------------------------
// true: remove the image's existing annotations before importing (child detections are kept).
boolean deleteExisting = false
// true: save the image data from within the script (getProjectEntry().saveImageData(...)).
// Not needed with GUI "Run for project" or headless --save, which save anyway.
boolean saveInScript = false
// Name of the folder, inside the project folder, that mammotools writes and reads.
String annotationFolderName = 'annotations'
// -----------------------------------------------------------------------------------------


/** The file stem mammotools uses for an image name (same rule as export_annotations.groovy). */
String mammotoolsStem(String imageName) {
    String stem = imageName
    int dot = stem.lastIndexOf('.')
    if (dot > 0 && dot < stem.length() - 1)
        stem = stem.substring(0, dot)
    stem = stem.replaceAll('[\\\\/:*?"<>|\\p{Cntrl}]', '_')
    return stem.isEmpty() ? '_' : stem
}

/**
 * The name used for the file: the entry's original name, never the masked one
 * (getImageName() returns a random UUID while image names are masked).
 */
String originalImageName(def entry, def imageData) {
    if (entry != null)
        return entry.getOriginalImageName()
    return imageData.getServer().getMetadata().getName()
}

/**
 * Copies an entry's data.qpdata that QuPath could not read to data.qpdata.unreadable-<time> beside it
 * (once: an earlier copy with the same size and time is reused), because QuPath replaces data.qpdata
 * whenever it saves the image - after "Run for project" or with --save - and would lose it.
 * Returns the copy, or null if there is nothing to copy or copying failed.
 */
Path keepUnreadableDataFile(def entry) {
    try {
        Path folder = entry.getEntryPath()
        Path data = folder == null ? null : folder.resolve('data.qpdata')
        if (data == null || !Files.isRegularFile(data))
            return null
        long size = Files.size(data)
        long modified = Files.getLastModifiedTime(data).toMillis()
        // COPY_ATTRIBUTES keeps the time, but not always to the nanosecond: compare within 2 s
        Path earlier = folder.toFile().listFiles()
                .findAll { it.getName().startsWith('data.qpdata.unreadable-') && it.isFile() }
                .collect { it.toPath() }
                .find { Files.size(it) == size && Math.abs(Files.getLastModifiedTime(it).toMillis() - modified) <= 2000L }
        if (earlier != null)
            return earlier
        String time = new java.text.SimpleDateFormat('yyyyMMdd-HHmmss').format(new Date())
        Path copy = folder.resolve('data.qpdata.unreadable-' + time)
        Files.copy(data, copy, StandardCopyOption.COPY_ATTRIBUTES)
        return copy
    } catch (Exception e) {
        println "mammotools: could not copy the unreadable data file aside: ${e}"
        return null
    }
}

/** Folder holding the project: getPath() is the .qpproj file (or, for other kinds of project, a folder). */
File projectFolder(def project) {
    Path path = project.getPath()
    if (path == null)
        return null
    return Files.isDirectory(path) ? path.toFile() : path.getParent().toFile()
}


def project = getProject()
if (project == null) {
    println 'mammotools import: no project is open - open a QuPath project (or pass --project=project.qpproj) and run again. Nothing imported.'
    return
}
def imageData = getCurrentImageData()
if (imageData == null) {
    println 'mammotools import: no image is open - use "Run for project", or open an image first. Nothing imported.'
    return
}
File baseDir = projectFolder(project)
if (baseDir == null) {
    println 'mammotools import: this project is not on the local file system. Nothing imported.'
    return
}

def entry = getProjectEntry()
String imageName = originalImageName(entry, imageData)
if (imageName == null || imageName.isEmpty()) {
    println 'mammotools import: ERROR: the image has no name in the project. Nothing imported.'
    return
}
// readImageData() leaves the last saved path null when it could not read the entry's data.qpdata
// (QuPath logs the error and carries on with an empty image).
if (entry != null && entry.hasImageData() && imageData.getLastSavedPath() == null) {
    Path copy = keepUnreadableDataFile(entry)
    String copyNote = copy == null ? '' : " A copy of the data file is kept as ${copy}, as QuPath replaces data.qpdata whenever it saves this image."
    println "mammotools import: WARNING: ${imageName}\tskipped: QuPath could not read this image's data file " +
            "${entry.getEntryPath()?.resolve('data.qpdata')} (see the error in its log) and opened the image with no objects. " +
            "Nothing imported; fix or restore the data file first.${copyNote}"
    return
}

String stem = mammotoolsStem(imageName)
File inDir = new File(baseDir, annotationFolderName)
File inFile = ['.geojson', '.json'].collect { new File(inDir, stem + it) }.find { it.isFile() }
if (inFile == null) {
    println "mammotools import: ${imageName}\tskipped: no ${stem}.geojson or ${stem}.json in ${inDir.getAbsolutePath()}"
    return
}

int removed = 0
if (deleteExisting) {
    def existing = new ArrayList(getAnnotationObjects())
    removed = existing.size()
    if (removed > 0)
        removeObjects(existing, true)
}

int annotationsBefore = getAnnotationObjects().size()
int detectionsBefore = getDetectionObjects().size()
importObjectsFromFile(inFile.getAbsolutePath())
int addedAnnotations = getAnnotationObjects().size() - annotationsBefore
int addedDetections = getDetectionObjects().size() - detectionsBefore
fireHierarchyUpdate()

String savedNote = ''
if (saveInScript) {
    if (entry == null) {
        savedNote = '; NOT saved: the image is not in the project'
    } else {
        entry.saveImageData(imageData)
        savedNote = '; saved'
    }
}
String detectionNote = addedDetections != 0 ? ", ${addedDetections} detection(s)" : ''
String removedNote = deleteExisting ? ", ${removed} existing annotation(s) removed first" : ''
println "mammotools import: ${imageName}\t${addedAnnotations} annotation(s)${detectionNote} added${removedNote}" +
        "\t<- ${inFile.getAbsolutePath()}\t(now ${getAnnotationObjects().size()} annotation(s)${savedNote})"
