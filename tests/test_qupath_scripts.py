"""The QuPath Groovy scripts in qupath_scripts/ and their page docs/qupath-scripts.md.

QuPath itself cannot run here. The static tests read the scripts and the page; where a Groovy
runtime is on the machine (Debian's ``groovy`` package puts ``/usr/share/java/groovy-all.jar``
there; or set ``GROOVY_CLASSPATH`` to Groovy's jars), the scripts are also compiled and run against small stand-ins
for the QuPath functions they call (``getProject()``, ``getProjectEntry()``, ``getCurrentImageData()``,
``getAnnotationObjects()``, ``exportObjectsToGeoJson(...)``, ``importObjectsFromFile(...)``...), which
behave as QuPath's do for the cases tested: masked image names (``ProjectImageEntry.getImageName()``
returns a random UUID, ``getOriginalImageName()`` the real name) and a ``data.qpdata`` that QuPath could
not read (``hasImageData()`` true, ``ImageData.getLastSavedPath()`` null, no objects).
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "qupath_scripts"
EXPORT = SCRIPTS / "export_annotations.groovy"
IMPORT = SCRIPTS / "import_annotations.groovy"
DOCS = ROOT / "docs" / "qupath-scripts.md"

QPDATA = b"\xac\xed\x00\x05 stands in for a data.qpdata"
MASKED = "5f0c6a0e-8d0b-4c55-9a57-0d7e3c1f2b11"  # what getImageName() returns while names are masked


def code_only(groovy: str) -> str:
    """Groovy source without its comments (string literals here contain no comment markers)."""
    groovy = re.sub(r"/\*.*?\*/", "", groovy, flags=re.S)
    return re.sub(r"(?m)^\s*//.*$|\s//\s.*$", "", groovy)


# ---- static checks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("script", [EXPORT, IMPORT], ids=["export", "import"])
def test_scripts_name_files_by_the_original_image_name(script: Path) -> None:
    code = code_only(script.read_text(encoding="utf-8"))
    assert "getOriginalImageName()" in code
    # getImageName() is the masked (random) name while "Mask image names" is on: never a file name
    assert "getImageName()" not in code


def test_export_guards_a_non_empty_export_against_an_empty_one() -> None:
    code = code_only(EXPORT.read_text(encoding="utf-8"))
    # how the script tells that QuPath could not read data.qpdata
    assert re.search(r"hasImageData\(\)\s*&&\s*imageData\.getLastSavedPath\(\)\s*==\s*null", code)
    assert "countFeatures(outFile)" in code
    assert "WARNING" in code
    assert "overwrite-empty" in code and "overwriteWithEmpty" in code
    # the guard stops before the file is written
    assert code.index("countFeatures(outFile)") < code.index("exportObjectsToGeoJson(")


def test_import_skips_an_image_whose_data_could_not_be_read() -> None:
    code = code_only(IMPORT.read_text(encoding="utf-8"))
    guard = re.search(r"hasImageData\(\)\s*&&\s*imageData\.getLastSavedPath\(\)\s*==\s*null", code)
    assert guard
    assert guard.start() < code.index("importObjectsFromFile(")


def _command_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if re.search(r"\bscript\s+--project=", line)]


PLATFORMS = {
    "linux": re.compile(r"^QuPath/bin/QuPath script "),
    "windows": re.compile(r'^(& )?["\']QuPath-[0-9.]+ \(console\)\.exe["\'] script '),
    "macos": re.compile(r"^/Applications/QuPath-[^/ ]+\.app/Contents/MacOS/QuPath(-[0-9.]+-(arm64|x64))? script "),
}


def test_docs_give_each_platform_an_export_and_an_import_command() -> None:
    commands = _command_lines(DOCS.read_text(encoding="utf-8"))
    for platform, prefix in PLATFORMS.items():
        lines = [line for line in commands if prefix.search(line)]
        exports = [line for line in lines if "export_annotations.groovy" in line]
        imports = [line for line in lines if "import_annotations.groovy" in line]
        assert exports, f"no headless export command for {platform}"
        assert imports, f"no headless import command for {platform}"
        assert all(re.search(r"--project=\S*\.qpproj", line) for line in lines), lines
        # --save is needed for the import (so the objects reach data.qpdata), and not for the export
        assert all("--save" in line for line in imports), imports
        assert not any("--save" in line for line in exports), exports


def test_docs_state_the_save_rule_and_what_qupath_does() -> None:
    text = DOCS.read_text(encoding="utf-8")
    flat = " ".join(text.split())
    assert "`--save` is needed for the import" in flat
    assert "not for the export" in flat
    # every version reads each image's data for a project run; 0.4+ offers to refresh open images
    assert "QuPath may open each image" not in flat
    assert "only after the image is opened again" not in flat
    assert "Refresh open images?" in flat
    assert "Reload data" in flat
    # the masked-names rule and the empty-export guard are documented
    assert "getOriginalImageName()" in flat
    assert "Mask image names" in flat
    assert "--args overwrite-empty" in flat


# ---- running the scripts with Groovy against QuPath stand-ins ----------------------------------------------


def _groovy() -> list[str] | None:
    """``java -cp <Groovy jars> groovy.ui.GroovyMain``, or None where there is no Groovy runtime."""
    java = shutil.which("java")
    if java is None:
        return None
    # GROOVY_CLASSPATH: Groovy's jars (groovy and groovy-json at least), separated by os.pathsep
    classpaths = [os.environ.get("GROOVY_CLASSPATH", "")]
    for folder in ("/usr/share/java", "/usr/share/groovy/embeddable"):
        classpaths += sorted(glob.glob(f"{folder}/groovy-all*.jar"))
    for classpath in classpaths:
        parts = [part for part in classpath.split(os.pathsep) if part]
        if parts and all(Path(part).is_file() for part in parts):
            return [java, "-XX:TieredStopAtLevel=1", "-cp", os.pathsep.join(parts), "groovy.ui.GroovyMain"]
    return None


GROOVY = _groovy()
needs_groovy = pytest.mark.skipif(
    GROOVY is None,
    reason="no Groovy runtime: java and /usr/share/java/groovy-all.jar (Debian package 'groovy'), or set GROOVY_CLASSPATH",
)

# Stand-ins for the QuPath scripting functions the scripts call, in Groovy 2.4 syntax (QuPath has 3 or 4).
HARNESS = r"""
import java.nio.file.Paths

def cfg = new groovy.json.JsonSlurper().parse(new File(args[0]))
File projectDir = new File(cfg.projectDir)

def annotation = { String cls -> new Expando(getPathClass: { -> cls == null ? null : new Expando(toString: { -> cls }) }) }
def annotations = []
(cfg.annotations ?: []).each { annotations << annotation(it) }

def entries = cfg.images.withIndex().collect { img, i ->
    def folder = Paths.get(projectDir.path, 'data', String.valueOf(i + 1))
    new Expando(
        getImageName: { -> cfg.masked ? img.masked : img.name },
        getOriginalImageName: { -> img.name },
        getEntryPath: { -> folder },
        hasImageData: { -> java.nio.file.Files.exists(folder.resolve('data.qpdata')) },
        saveImageData: { d -> println 'STUB: saved' })
}
def entry = entries[cfg.current]
def current = cfg.images[cfg.current]
def imageData = new Expando(
    getLastSavedPath: { -> current.loaded ? new File(projectDir, 'data/1/data.qpdata').path : null },  // null: not read
    getServer: { -> new Expando(getMetadata: { -> new Expando(getName: { -> cfg.masked ? current.masked : current.name }) }) })
def project = new Expando(
    getPath: { -> Paths.get(projectDir.path, 'project.qpproj') },
    getImageList: { -> new ArrayList(entries) },
    getMaskImageNames: { -> cfg.masked })

def binding = new Binding()
binding.setVariable('getProject', { -> project })
binding.setVariable('getProjectEntry', { -> entry })
binding.setVariable('getCurrentImageData', { -> imageData })
binding.setVariable('getAnnotationObjects', { -> new ArrayList(annotations) })
binding.setVariable('getDetectionObjects', { -> [] })
binding.setVariable('fireHierarchyUpdate', { -> })
binding.setVariable('removeObjects', { objs, keepChildren -> annotations.removeAll(objs) })
binding.setVariable('exportObjectsToGeoJson', { objs, String path, String option ->
    assert option == 'FEATURE_COLLECTION'
    def features = objs.collect { '{"type": "Feature", "geometry": null, "properties": {"objectType": "annotation"}}' }
    new File(path).setText('{"type": "FeatureCollection", "features": [' + features.join(', ') + ']}', 'UTF-8')
})
binding.setVariable('importObjectsFromFile', { String path ->
    int n = (new File(path).getText('UTF-8') =~ /"type"\s*:\s*"Feature"/).size()
    n.times { annotations << annotation('Tumor') }
    return n > 0
})
if (cfg.args != null)
    binding.setVariable('args', cfg.args as String[])

new GroovyShell(binding).evaluate(new File(cfg.script))
println "STUB: annotations now ${annotations.size()}"
"""


def feature_collection(n: int) -> str:
    feature = {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [1, 2]},
        "properties": {"objectType": "annotation"},
    }
    return json.dumps({"type": "FeatureCollection", "features": [feature] * n}, indent=2)


def run_script(
    tmp_path: Path,
    script: Path,
    *,
    name: str = "case001_L_CC.dcm",
    masked: bool = False,
    has_data: bool = True,
    loaded: bool = True,
    annotations: list[str | None] | None = None,
    args: list[str] | None = None,
) -> str:
    assert GROOVY is not None
    project = tmp_path / "project"
    project.mkdir(exist_ok=True)
    (project / "project.qpproj").write_text("{}", encoding="utf-8")
    data = project / "data" / "1" / "data.qpdata"
    if has_data and not data.exists():
        data.parent.mkdir(parents=True)
        data.write_bytes(QPDATA)
    harness = tmp_path / "harness.groovy"
    harness.write_text(HARNESS, encoding="utf-8")
    cfg = {
        "script": str(script),
        "projectDir": str(project),
        "masked": masked,
        "current": 0,
        "images": [
            {"name": name, "masked": MASKED, "loaded": loaded},
            {"name": "case002_R_MLO.dcm", "masked": "0b9d7a3e-2c4f-4e8a-b1d6-7f3e9c2a5d40", "loaded": True},
        ],
        "annotations": annotations or [],
        "args": args,
    }
    config = tmp_path / "config.json"
    config.write_text(json.dumps(cfg), encoding="utf-8")
    done = subprocess.run([*GROOVY, str(harness), str(config)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def exports(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "project" / "annotations"
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.iterdir())} if folder.is_dir() else {}


def n_features(text: str) -> int:
    return len(json.loads(text)["features"])


def copies_of_data(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "project" / "data" / "1").glob("data.qpdata.unreadable-*"))


@needs_groovy
def test_export_with_masked_names_writes_the_original_name(tmp_path: Path) -> None:
    out = run_script(tmp_path, EXPORT, masked=True, annotations=["Tumor", "Skin"])
    files = exports(tmp_path)
    assert list(files) == ["case001_L_CC.geojson"], out
    assert n_features(files["case001_L_CC.geojson"]) == 2
    assert MASKED not in out
    assert "mammotools export: case001_L_CC.dcm\t2 annotation(s) (Skin: 1, Tumor: 1)" in out


@needs_groovy
def test_import_with_masked_names_finds_the_original_name(tmp_path: Path) -> None:
    folder = tmp_path / "project" / "annotations"
    folder.mkdir(parents=True)
    (folder / "case001_L_CC.geojson").write_text(feature_collection(3), encoding="utf-8")
    out = run_script(tmp_path, IMPORT, masked=True)
    assert "skipped" not in out
    assert "mammotools import: case001_L_CC.dcm\t3 annotation(s) added" in out
    assert "STUB: annotations now 3" in out


@needs_groovy
def test_export_keeps_a_good_export_when_the_data_file_could_not_be_read(tmp_path: Path) -> None:
    folder = tmp_path / "project" / "annotations"
    folder.mkdir(parents=True)
    good = feature_collection(4)
    (folder / "case001_L_CC.geojson").write_text(good, encoding="utf-8")
    out = run_script(tmp_path, EXPORT, has_data=True, loaded=False)
    assert exports(tmp_path) == {"case001_L_CC.geojson": good}
    warnings = [line for line in out.splitlines() if "WARNING" in line]
    assert any("could not read" in line and str(tmp_path / "project" / "data" / "1" / "data.qpdata") in line for line in warnings)
    [kept] = [line for line in warnings if str(folder / "case001_L_CC.geojson") in line]
    assert "case001_L_CC.dcm" in kept and "unchanged" in kept
    assert "overwrite-empty" in kept


@needs_groovy
def test_export_writes_no_empty_file_when_the_data_file_could_not_be_read(tmp_path: Path) -> None:
    out = run_script(tmp_path, EXPORT, has_data=True, loaded=False)
    assert exports(tmp_path) == {}
    assert "WARNING: case001_L_CC.dcm" in out and "could not read" in out
    # QuPath replaces data.qpdata when it saves the image, so the unreadable file is copied aside, once
    [copy] = copies_of_data(tmp_path)
    assert copy.read_bytes() == QPDATA
    assert f"a copy of it is kept as {copy}" in out
    again = run_script(tmp_path, EXPORT, has_data=True, loaded=False)
    assert copies_of_data(tmp_path) == [copy]
    assert str(copy) in again


@needs_groovy
def test_export_keeps_a_non_empty_export_when_the_image_has_no_annotations(tmp_path: Path) -> None:
    # an image without annotations and without an export gets an empty FeatureCollection, as before
    run_script(tmp_path, EXPORT)
    assert n_features(exports(tmp_path)["case001_L_CC.geojson"]) == 0
    # but a file holding features is not replaced by an empty one
    folder = tmp_path / "project" / "annotations"
    good = feature_collection(2)
    (folder / "case001_L_CC.geojson").write_text(good, encoding="utf-8")
    out = run_script(tmp_path, EXPORT)
    assert exports(tmp_path) == {"case001_L_CC.geojson": good}
    warning = next(line for line in out.splitlines() if "WARNING" in line)
    assert "case001_L_CC.dcm" in warning and "holds 2 feature(s)" in warning
    assert str(folder / "case001_L_CC.geojson") in warning
    assert "overwriteWithEmpty = true" in warning and "--args overwrite-empty" in warning


@needs_groovy
@pytest.mark.parametrize("how", ["args", "option"])
def test_export_replaces_with_an_empty_export_only_when_asked_and_says_so(tmp_path: Path, how: str) -> None:
    folder = tmp_path / "project" / "annotations"
    folder.mkdir(parents=True)
    (folder / "case001_L_CC.geojson").write_text(feature_collection(2), encoding="utf-8")
    script = EXPORT
    if how == "option":
        script = tmp_path / "export_annotations.groovy"
        text = EXPORT.read_text(encoding="utf-8")
        assert "boolean overwriteWithEmpty = false" in text
        forced = text.replace("boolean overwriteWithEmpty = false", "boolean overwriteWithEmpty = true")
        script.write_text(forced, encoding="utf-8")
    out = run_script(tmp_path, script, args=["overwrite-empty"] if how == "args" else [])
    assert n_features(exports(tmp_path)["case001_L_CC.geojson"]) == 0
    assert "WARNING: case001_L_CC.dcm" in out and "anyway, as requested (overwrite-empty)" in out


@needs_groovy
def test_import_skips_when_the_data_file_could_not_be_read(tmp_path: Path) -> None:
    folder = tmp_path / "project" / "annotations"
    folder.mkdir(parents=True)
    (folder / "case001_L_CC.geojson").write_text(feature_collection(3), encoding="utf-8")
    out = run_script(tmp_path, IMPORT, has_data=True, loaded=False)
    assert "STUB: annotations now 0" in out
    assert "WARNING: case001_L_CC.dcm\tskipped" in out and "could not read" in out
    [copy] = copies_of_data(tmp_path)
    assert copy.read_bytes() == QPDATA
    assert f"A copy of the data file is kept as {copy}" in out
