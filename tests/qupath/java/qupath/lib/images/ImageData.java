package qupath.lib.images;

/** Only the image type enum of QuPath's ImageData is serialized. */
public class ImageData {
	public enum ImageType { BRIGHTFIELD_H_DAB, BRIGHTFIELD_H_E, BRIGHTFIELD_OTHER, FLUORESCENCE, OTHER, UNSET }
}
