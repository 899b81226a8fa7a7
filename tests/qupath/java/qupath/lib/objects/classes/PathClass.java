package qupath.lib.objects.classes;

import java.io.Serializable;

/** QuPath's PathClass as serialized (default serialization; derived classes chain through parentClass). */
public final class PathClass implements Serializable {
	private static final long serialVersionUID = 1L;
	private final PathClass parentClass;
	private final String name;
	private Integer colorRGB;

	public PathClass(PathClass parentClass, String name, Integer colorRGB) {
		this.parentClass = parentClass;
		this.name = name;
		this.colorRGB = colorRGB;
	}
}
