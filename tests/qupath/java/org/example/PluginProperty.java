package org.example;

import java.io.IOException;
import java.io.ObjectOutputStream;
import java.io.Serializable;

/** An image property from a plugin the reader does not know: default fields plus custom writeObject data. */
public class PluginProperty implements Serializable {
	private static final long serialVersionUID = -5L;
	private final double score = 0.75;
	private final String label = "plugin";
	private final long[] history = {1L, 2L};

	private void writeObject(ObjectOutputStream out) throws IOException {
		out.defaultWriteObject();
		out.writeInt(3);
		out.writeObject(new StringBuilder("custom"));
		out.write(new byte[2000]); // more than one block of block data
	}
}
