/**
 * mammotools: export the current image's annotations to GeoJSON.
 *
 * Writes every *annotation* object of the current image (no detections, cells or TMA cores)
 * as one GeoJSON FeatureCollection to
 *
 *     <project folder>/annotations/<original image name without its final extension>.geojson
 *
 * which is where `mammotools export-qupath` and `mammotools inspect` look for it.
 *
 * Works with QuPath 0.3, 0.4, 0.5 and 0.6. Needs an open project.
 *   GUI:      Automate > Script editor (0.3/0.4: "Show script editor"), open this file,
 *             then Run > "Run for project (without save)" (0.3) / "(without saving)" (0.4+),
 *             or Run > Run for the image that is open.
 *   Headless (no --save; see docs/qupath-scripts.md for the executable on each platform):
 *             QuPath/bin/QuPath script --project=/path/to/project.qpproj export_annotations.groovy
 * The script changes nothing in the project (apart from the safety copy described below).
 * Do not let QuPath save after it ("Run for project" with saving, or --save): for an image whose
 * data.qpdata cannot be read, QuPath opens the image with no objects, and saving would replace
 * that data file with an empty one.
 *
 * File name rule (mammotools uses the same one to find the file):
 *   1. take the image's *original* name (ProjectImageEntry.getOriginalImageName()): the name
 *      stored as "imageName" in project.qpproj, also when QuPath's "Mask image names in
 *      projects" preference is on (then getImageName() returns a random UUID instead);
 *   2. remove the final extension: the text from the last '.' on, if that '.' is neither
 *      the first nor the last character ("case1.dcm" -> "case1", "a.ome.tif" -> "a.ome");
 *   3. replace each of  \ / : * ? " < > |  and each control character with '_'.
 *
 * An existing export is never replaced by an empty one without a WARNING line:
 *   - if the image's data.qpdata exists but could not be read (QuPath logs an error and carries
 *     on with an empty image; the script sees this as ImageData.getLastSavedPath() == null while
 *     ProjectImageEntry.hasImageData() is true), an image without annotations is not exported;
 *   - if the image has no annotations and <stem>.geojson already holds features, that file is kept.
 * Both print a WARNING naming the image and the file. To write the empty export anyway, set
 * overwriteWithEmpty = true below, or run headless with  --args overwrite-empty
 * An unreadable data.qpdata is also copied aside to data.qpdata.unreadable-<time>, because QuPath
 * replaces data.qpdata whenever it saves the image.
 */

import java.nio.file.AtomicMoveNotSupportedException
import java.nio.file.Files
import java.nio.file.Path
import java.nio.file.StandardCopyOption

// ---- Options ---------------------------------------------------------------------------
// true: write an empty export even where that replaces a file holding features, or where the
// image's data file could not be read. Headless, `--args overwrite-empty` does the same.
boolean overwriteWithEmpty = false
// Name of the folder, inside the project folder, that mammotools reads.
String annotationFolderName = 'annotations'
// -----------------------------------------------------------------------------------------


/** The file stem mammotools expects for an image name (see the rule above). */
String mammotoolsStem(String imageName) {
    String stem = imageName
    int dot = stem.lastIndexOf('.')
    if (dot > 0 && dot < stem.length() - 1)
        stem = stem.substring(0, dot)
    stem = stem.replaceAll('[\\\\/:*?"<>|\\p{Cntrl}]', '_')
    return stem.isEmpty() ? '_' : stem
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

/**
 * The name used for the file: the entry's original name, never the masked one
 * (getImageName() returns a random UUID while image names are masked).
 */
String originalImageName(def entry, def imageData) {
    if (entry != null)
        return entry.getOriginalImageName()
    return imageData.getServer().getMetadata().getName()
}

/** Number of GeoJSON features in an existing export; -1 if it cannot be read (treated as non-empty). */
int countFeatures(File file) {
    try {
        String text = file.getText('UTF-8')
        return (text =~ /"type"\s*:\s*"Feature"/).size()
    } catch (IOException ignored) {
        return -1
    }
}

/** True if the script was started with `--args overwrite-empty` (headless `script` command). */
boolean overwriteRequestedByArgs() {
    try {
        def scriptArgs = binding.getVariable('args')
        return scriptArgs != null && (scriptArgs as List).any { String.valueOf(it).trim() == 'overwrite-empty' }
    } catch (MissingPropertyException ignored) {
        return false
    }
}


def project = getProject()
if (project == null) {
    println 'mammotools export: no project is open - open a QuPath project (or pass --project=project.qpproj) and run again. Nothing exported.'
    return
}
def imageData = getCurrentImageData()
if (imageData == null) {
    println 'mammotools export: no image is open - use "Run for project", or open an image first. Nothing exported.'
    return
}
File baseDir = projectFolder(project)
if (baseDir == null) {
    println 'mammotools export: this project is not on the local file system. Nothing exported.'
    return
}
boolean forceEmpty = overwriteWithEmpty || overwriteRequestedByArgs()

def entry = getProjectEntry()
String imageName = originalImageName(entry, imageData)
if (imageName == null || imageName.isEmpty()) {
    println 'mammotools export: ERROR: the image has no name in the project. Nothing exported.'
    return
}
if (entry == null)
    println "mammotools export: WARNING: '${imageName}' is not an image of the open project; exporting it anyway."

File outDir = new File(baseDir, annotationFolderName)
if (!outDir.isDirectory() && !outDir.mkdirs() && !outDir.isDirectory())
    throw new IOException("mammotools export: cannot create folder ${outDir}")

String stem = mammotoolsStem(imageName)
File outFile = new File(outDir, stem + '.geojson')

// Several project images that map to the same file would overwrite each other's export.
def sameStem = project.getImageList()
        .findAll { !it.is(entry) && it.getOriginalImageName() != null && mammotoolsStem(it.getOriginalImageName()) == stem }
        .collect { it.getOriginalImageName() }
if (!sameStem.isEmpty())
    println "mammotools export: WARNING: other project image(s) ${sameStem.collect { "'" + it + "'" }.join(', ')} map to the same file ${outFile.getName()} and overwrite each other's export; rename images so that each stem is unique."

def annotations = new ArrayList(getAnnotationObjects())

// readImageData() sets the last saved path when it has read data.qpdata (or its backup
// data.qpdata.bkp); when both fail it logs an error and returns an empty ImageData, whose last
// saved path stays null although the entry has a data file.
boolean dataUnreadable = entry != null && entry.hasImageData() && imageData.getLastSavedPath() == null
if (dataUnreadable) {
    Path copy = keepUnreadableDataFile(entry)
    String copyNote = copy == null ? '' : "; a copy of it is kept as ${copy} (QuPath replaces data.qpdata whenever it saves this image)"
    println "mammotools export: WARNING: ${imageName}\tQuPath could not read this image's data file " +
            "${entry.getEntryPath()?.resolve('data.qpdata')} (see the error in its log) and opened the image with no objects${copyNote}."
}
if (annotations.isEmpty()) {
    // Never replace a non-empty export with an empty one without saying so.
    String problem = null
    if (dataUnreadable) {
        problem = 'the image data could not be read, so it shows no annotations'
    } else if (outFile.isFile()) {
        int existing = countFeatures(outFile)
        if (existing != 0)
            problem = 'the image has no annotations, but its export ' + (existing > 0 ? "holds ${existing} feature(s)" : 'cannot be read')
    }
    if (problem != null && !forceEmpty) {
        String kept = outFile.isFile() ? "kept ${outFile.getAbsolutePath()} unchanged" : "wrote no ${outFile.getAbsolutePath()}"
        String fix = dataUnreadable ? 'Fix or restore the image\'s data.qpdata and run again; if' : 'If'
        println "mammotools export: WARNING: ${imageName}\t${problem}; ${kept}. " +
                "${fix} the image really has no annotations now, set overwriteWithEmpty = true in the script " +
                '(headless: add --args overwrite-empty) to write the empty export.'
        return
    }
    if (problem != null)
        println "mammotools export: WARNING: ${imageName}\t${problem}; writing the empty export ${outFile.getAbsolutePath()} anyway, as requested (overwrite-empty)."
} else if (dataUnreadable) {
    println "mammotools export: WARNING: ${imageName}\texporting the ${annotations.size()} annotation(s) present now, although the image data could not be read."
}

// Write beside the target under a hidden temporary name (not ending in .geojson, .zip or .gz),
// then rename, so an interrupted run never leaves a half-written .geojson behind.
File tmpFile = new File(outDir, '.' + outFile.getName() + '.tmp-' + UUID.randomUUID())
try {
    exportObjectsToGeoJson(annotations, tmpFile.getAbsolutePath(), 'FEATURE_COLLECTION')
    try {
        Files.move(tmpFile.toPath(), outFile.toPath(), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE)
    } catch (AtomicMoveNotSupportedException ignored) {
        Files.move(tmpFile.toPath(), outFile.toPath(), StandardCopyOption.REPLACE_EXISTING)
    }
} finally {
    Files.deleteIfExists(tmpFile.toPath())
}

// Count per class, for a quick check that the class names are the ones mammotools knows.
def perClass = new TreeMap<String, Integer>()
for (def annotation : annotations) {
    String className = annotation.getPathClass() == null ? 'Unclassified' : annotation.getPathClass().toString()
    perClass[className] = (perClass[className] ?: 0) + 1
}
String classSummary = perClass.isEmpty() ? '' : ' (' + perClass.collect { k, v -> "${k}: ${v}" }.join(', ') + ')'
println "mammotools export: ${imageName}\t${annotations.size()} annotation(s)${classSummary}\t-> ${outFile.getAbsolutePath()}"
