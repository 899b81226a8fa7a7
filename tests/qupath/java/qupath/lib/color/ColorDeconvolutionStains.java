package qupath.lib.color;

import java.io.Externalizable;
import java.io.IOException;
import java.io.ObjectInput;
import java.io.ObjectOutput;

/** QuPath's stain vectors as serialized: a version and the stains as a string. */
public class ColorDeconvolutionStains implements Externalizable {
	private static final long serialVersionUID = 1L;
	private final String text;

	public ColorDeconvolutionStains(String text) { this.text = text; }

	@Override
	public void writeExternal(ObjectOutput out) throws IOException {
		out.writeInt(1);
		out.writeObject(text);
	}

	@Override
	public void readExternal(ObjectInput in) { throw new UnsupportedOperationException("write only"); }
}
