package qupath.lib.objects;

import java.io.Externalizable;
import java.io.IOException;
import java.io.ObjectInput;
import java.io.ObjectOutput;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.UUID;

/**
 * QuPath's path objects with their writeExternal exactly as in QuPath (PathObject, PathROIObject, PathCellObject,
 * TMACoreObject), for the three layouts QuPath has used: "legacy" (0.2, 0.3: metadata written only if present),
 * "ids" (0.4 to 0.7, data version 3: the object ID inside an always-written MetadataMap) and "uuid" (data version 4).
 */
public final class Fixtures {
	private Fixtures() {}

	public static String layout = "ids";

	public static PathObject root() { return new PathRootObject(); }
	public static PathObject annotation(Object roi, Object pathClass) { return init(new PathAnnotationObject(), roi, pathClass); }
	public static PathObject detection(Object roi, Object pathClass) { return init(new PathDetectionObject(), roi, pathClass); }
	public static PathObject tile(Object roi) { return init(new PathTileObject(), roi, null); }
	public static PathObject plugin(Object roi) { return init(new PluginDetection(), roi, null); }
	public static PathObject cell(Object roi, Object nucleus, Object pathClass) {
		PathCellObject cell = init(new PathCellObject(), roi, pathClass);
		cell.nucleus = nucleus;
		return cell;
	}
	public static PathObject core(Object roi, String name, boolean missing) {
		TMACoreObject core = init(new TMACoreObject(), roi, null);
		core.name = name;
		core.isMissing = missing;
		return core;
	}

	private static <T extends PathROIObject> T init(T object, Object roi, Object pathClass) {
		object.roi = roi;
		object.pathClass = pathClass;
		return object;
	}

	public static void set(PathObject object, String name, Integer color, boolean locked, UUID id) {
		object.name = name;
		object.color = color;
		object.id = id;
		if (object instanceof PathROIObject)
			((PathROIObject)object).locked = locked;
	}
	public static void measurements(PathObject object, Object measurements) { object.measurements = measurements; }
	public static void metadata(PathObject object, String key, String value) {
		if (object.metadata == null)
			object.metadata = new MetadataMap();
		if (key != null)
			object.metadata.map.put(key, value);
	}
	public static void add(PathObject parent, PathObject... children) { for (PathObject c : children) parent.children.add(c); }
}

class PathRootObject extends PathObject {
	private static final long serialVersionUID = 1L;
}

abstract class PathROIObject extends PathObject {
	private static final long serialVersionUID = 1L;
	Object pathClass;
	Object roi;
	boolean locked;

	@Override
	public void writeExternal(ObjectOutput out) throws IOException {
		super.writeExternal(out);
		out.writeObject(Boolean.valueOf(locked));
		out.writeObject(pathClass);
		out.writeObject(roi);
		out.writeDouble(Double.NaN);
	}
}

class PathAnnotationObject extends PathROIObject {
	private static final long serialVersionUID = 1L;
}

class PathDetectionObject extends PathROIObject {
	private static final long serialVersionUID = 1L;
}

class PathTileObject extends PathDetectionObject {
	private static final long serialVersionUID = 1L;
}

class PathCellObject extends PathDetectionObject {
	private static final long serialVersionUID = 1L;
	Object nucleus;

	@Override
	public void writeExternal(ObjectOutput out) throws IOException {
		super.writeExternal(out);
		out.writeObject(nucleus);
	}
}

class TMACoreObject extends PathROIObject {
	private static final long serialVersionUID = 1L;
	boolean isMissing;

	@Override
	public void writeExternal(ObjectOutput out) throws IOException {
		super.writeExternal(out);
		out.writeBoolean(isMissing);
	}
}

/** A detection class from a plugin that QuPath's core does not know, writing extra data after its own. */
class PluginDetection extends PathDetectionObject {
	private static final long serialVersionUID = 7L;

	@Override
	public void writeExternal(ObjectOutput out) throws IOException {
		super.writeExternal(out);
		out.writeUTF("plugin data");
		out.writeObject(new int[] {1, 2, 3});
		out.writeLong(42L);
	}
}

class MetadataMap implements Externalizable {
	private static final long serialVersionUID = 1L;
	Map<String, String> map = new LinkedHashMap<>();

	@Override
	public void writeExternal(ObjectOutput out) throws IOException {
		out.writeObject(Integer.valueOf(1));
		out.writeObject(map.keySet().toArray());
		out.writeObject(map.values().toArray());
	}

	@Override
	public void readExternal(ObjectInput in) { throw new UnsupportedOperationException("write only"); }
}
