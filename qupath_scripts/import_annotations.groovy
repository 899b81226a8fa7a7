/**
 * mammotools: import annotations from GeoJSON into the current image.
 *
 * The reverse of export_annotations.groovy: reads
 *
 *     <project folder>/annotations/<image name without its final extension>.geojson
 *     (or, if that is absent, the .json file with the same stem)
 *
 * and adds its objects to the current image. Images without such a file are skipped.
 * Same file name rule as export_annotations.groovy.
 *
 * Works with QuPath 0.3, 0.4, 0.5 and 0.6. Needs an open project.
 *
 * Saving - the objects are only added in memory; they reach the project's data files when:
 *   GUI "Run for project":            QuPath saves each image after the script (the
 *                                     "(without save/saving)" variant does not);
 *   GUI "Run" on the open image:      use File > Save as usual;
 *   headless:                         add --save:
 *       QuPath script --project=/path/to/project.qpproj --save import_annotations.groovy
 * Set saveInScript = true only for a headless run without --save.
 *
 * Running it twice without deleteExisting = true adds the objects twice.
 */

import java.nio.file.Files
import java.nio.file.Path

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
String imageName = entry != null ? entry.getImageName() : imageData.getServer().getMetadata().getName()
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
