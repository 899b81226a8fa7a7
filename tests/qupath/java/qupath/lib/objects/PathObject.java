package qupath.lib.objects;

import java.io.Externalizable;
import java.io.IOException;
import java.io.ObjectInput;
import java.io.ObjectOutput;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;

/** QuPath's PathObject.writeExternal in its three layouts (see Fixtures). */
public abstract class PathObject implements Externalizable {
	private static final long serialVersionUID = 1L;
	UUID id;
	String name;
	Integer color;
	MetadataMap metadata;
	Object measurements;
	List<PathObject> children = new ArrayList<>();

	@Override
	public void writeExternal(ObjectOutput out) throws IOException {
		out.writeObject(name);
		out.writeObject(color);
		if (Fixtures.layout.equals("uuid")) {
			out.writeObject(id);
			int nFields = 1;
			if (metadata != null)
				nFields++;
			out.writeInt(nFields);
			if (metadata != null && !metadata.map.isEmpty()) // QuPath 0.6 quirk: counted but not written when empty
				out.writeObject(metadata);
			out.writeObject(measurements);
		} else if (Fixtures.layout.equals("ids")) {
			MetadataMap temp = new MetadataMap();
			if (metadata != null)
				temp.map.putAll(metadata.map);
			if (id != null && !temp.map.containsKey("Object ID"))
				temp.map.put("Object ID", id.toString());
			out.writeObject(temp);
			out.writeObject(measurements);
		} else {
			if (metadata != null)
				out.writeObject(metadata);
			out.writeObject(measurements);
		}
		out.writeInt(children.size());
		for (PathObject child : children)
			out.writeObject(child);
	}

	@Override
	public void readExternal(ObjectInput in) { throw new UnsupportedOperationException("write only"); }
}
