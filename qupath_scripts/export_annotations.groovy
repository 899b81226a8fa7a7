/**
 * mammotools: export the current image's annotations to GeoJSON.
 *
 * Writes every *annotation* object of the current image (no detections, cells or TMA cores)
 * as one GeoJSON FeatureCollection to
 *
 *     <project folder>/annotations/<image name without its final extension>.geojson
 *
 * which is where `mammotools export-qupath` and `mammotools inspect` look for it.
 * The file is always (re)written, also when the image has no annotations (an empty
 * FeatureCollection), so a stale export never survives.
 *
 * Works with QuPath 0.3, 0.4, 0.5 and 0.6. Needs an open project.
 *   GUI:      Automate > Script editor (0.3/0.4: "Show script editor"), open this file,
 *             then Run > Run for project (or Run for the image that is open).
 *   Headless: QuPath script --project=/path/to/project.qpproj export_annotations.groovy
 * The script changes nothing in the project, so it needs no --save and may be run
 * with "Run for project (without saving)".
 *
 * File name rule (mammotools uses the same one to find the file):
 *   1. take the image name as shown in the project;
 *   2. remove the final extension: the text from the last '.' on, if that '.' is neither
 *      the first nor the last character ("case1.dcm" -> "case1", "a.ome.tif" -> "a.ome");
 *   3. replace each of  \ / : * ? " < > |  and each control character with '_'.
 */

import java.nio.file.AtomicMoveNotSupportedException
import java.nio.file.Files
import java.nio.file.Path
import java.nio.file.StandardCopyOption

// Name of the folder, inside the project folder, that mammotools reads.
String annotationFolderName = 'annotations'


/** The file stem mammotools expects for an image name (see the rule above). */
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

def entry = getProjectEntry()
String imageName = entry != null ? entry.getImageName() : imageData.getServer().getMetadata().getName()
if (entry == null)
    println "mammotools export: WARNING: '${imageName}' is not an image of the open project; exporting it anyway."

File outDir = new File(baseDir, annotationFolderName)
if (!outDir.isDirectory() && !outDir.mkdirs() && !outDir.isDirectory())
    throw new IOException("mammotools export: cannot create folder ${outDir}")

String stem = mammotoolsStem(imageName)
File outFile = new File(outDir, stem + '.geojson')

// Several project images that map to the same file would overwrite each other's export.
def sameStem = project.getImageList()
        .findAll { !it.is(entry) && mammotoolsStem(it.getImageName()) == stem }
        .collect { it.getImageName() }
if (!sameStem.isEmpty())
    println "mammotools export: WARNING: other project image(s) ${sameStem.collect { "'" + it + "'" }.join(', ')} map to the same file ${outFile.getName()} and overwrite each other's export; rename images so that each stem is unique."

def annotations = new ArrayList(getAnnotationObjects())

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
