package qupath.lib.objects.hierarchy;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;

/** QuPath's PathObjectHierarchy as serialized: the root object and the TMA grid (whose cores are children of the root). */
public final class PathObjectHierarchy implements Serializable {
	private static final long serialVersionUID = 1L;
	private TMAGrid tmaGrid;
	private qupath.lib.objects.PathObject rootObject;

	public PathObjectHierarchy(qupath.lib.objects.PathObject rootObject, List<?> cores, int gridWidth) {
		this.rootObject = rootObject;
		this.tmaGrid = cores == null ? null : new DefaultTMAGrid(cores, gridWidth);
	}
}

interface TMAGrid extends Serializable {}

class DefaultTMAGrid implements TMAGrid {
	private static final long serialVersionUID = 1L;
	private List<Object> cores = new ArrayList<>();
	private int gridWidth = -1;
	private int gridHeight = -1;

	DefaultTMAGrid(List<?> cores, int gridWidth) {
		this.cores.addAll(cores);
		this.gridWidth = gridWidth;
		this.gridHeight = cores.size() / gridWidth;
	}
}
