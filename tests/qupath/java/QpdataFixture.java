import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.ObjectOutputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.UUID;

import org.example.PluginProperty;
import qupath.lib.color.ColorDeconvolutionStains;
import qupath.lib.images.ImageData;
import qupath.lib.measurements.Measurements;
import qupath.lib.objects.Fixtures;
import qupath.lib.objects.PathObject;
import qupath.lib.objects.classes.PathClass;
import qupath.lib.objects.hierarchy.PathObjectHierarchy;
import qupath.lib.plugins.workflow.Workflow;
import qupath.lib.roi.Rois;

/**
 * Writes a .qpdata file laid out byte for byte as QuPath's PathIO.writeImageDataSerialized does, for the
 * test of mammotools.qupath.qpdata. Usage: java QpdataFixture STYLE OUT where STYLE is 0.2 (data version 2),
 * 0.3 (data version 3, no object IDs), 0.6 (data version 3 with object IDs, QuPath 0.4 to 0.7) or 4 (UUID fields).
 * Objects are made in depth-first order, so object i (1-based) gets the ID new UUID(0xABCD, i).
 */
public class QpdataFixture {
	static boolean ids;
	static int counter;
	static String style;
	static List<String> names = new ArrayList<>(Arrays.asList("Area", "Perimeter", "Mean"));

	static float[] f(double... v) {
		float[] out = new float[v.length];
		for (int i = 0; i < v.length; i++)
			out[i] = (float)v[i];
		return out;
	}

	static PathObject made(PathObject object) {
		counter++;
		Fixtures.set(object, null, null, false, ids ? new UUID(0xABCD, counter) : null);
		return object;
	}

	static Object measurements(double... values) {
		if (style.equals("0.2") || style.equals("0.3"))
			return Measurements.floatList(names, f(values), values[0] > 10);
		return Measurements.defaultList(names, values);
	}

	static byte[] wkb() throws IOException {
		// a MultiPolygon, as JTS WKBWriter(2) writes it (big-endian): a square with a hole, and a triangle
		double[][][][] polygons = {
			{{{600, 100}, {700, 100}, {700, 200}, {600, 200}, {600, 100}}, {{620, 120}, {620, 140}, {640, 140}, {640, 120}, {620, 120}}},
			{{{720, 100}, {760, 100}, {740, 130}, {720, 100}}}};
		ByteArrayOutputStream bytes = new ByteArrayOutputStream();
		DataOutputStream out = new DataOutputStream(bytes);
		out.writeByte(0);
		out.writeInt(6);
		out.writeInt(polygons.length);
		for (double[][][] polygon : polygons) {
			out.writeByte(0);
			out.writeInt(3);
			out.writeInt(polygon.length);
			for (double[][] ring : polygon) {
				out.writeInt(ring.length);
				for (double[] p : ring) {
					out.writeDouble(p[0]);
					out.writeDouble(p[1]);
				}
			}
		}
		return bytes.toByteArray();
	}

	public static void main(String[] args) throws IOException {
		style = args[0];
		ids = style.equals("0.6") || style.equals("4");
		Fixtures.layout = style.equals("4") ? "uuid" : ids ? "ids" : "legacy";

		PathClass tumor = new PathClass(null, "Tumor", 0xFFC80000);
		PathClass positive = new PathClass(tumor, "Positive", 0xFFC83232);
		PathClass stroma = new PathClass(null, "Stroma", 0xFF96C896);

		PathObject root = Fixtures.root();
		Fixtures.set(root, null, null, false, ids ? new UUID(0xABCD, 0) : null);
		PathObject a = made(Fixtures.annotation(Rois.polygon(f(100, 200, 220, 150, 80), f(100, 100, 160, 220, 160), true), positive));
		Fixtures.metadata(a, "Source", "fixture");
		PathObject a1 = made(Fixtures.annotation(Rois.rectangle(110, 120, 40, 30), tumor));
		Fixtures.set(a1, "inner rect", null, false, ids ? new UUID(0xABCD, counter) : null);
		PathObject a2 = made(Fixtures.annotation(Rois.ellipse(150, 130, 40, 20), stroma));
		PathObject a2a = made(Fixtures.detection(Rois.polygon(f(155, 165, 160), f(135, 135, 142), false), positive));
		PathObject a2b = made(Fixtures.cell(Rois.polygon(f(170, 180, 180, 170), f(132, 132, 140, 140), false), Rois.ellipse(173, 134, 4, 4), tumor));
		Fixtures.measurements(a2b, measurements(80, 36, 0.5));
		PathObject a2c = made(Fixtures.cell(Rois.polygon(f(181.25, 189.5, 185), f(131, 131, 139.75), true), null, tumor));
		Fixtures.measurements(a2c, measurements(33, 24, 0.25));
		Fixtures.add(a2, a2a, a2b, a2c);
		Fixtures.add(a, a1, a2);
		PathObject line = made(Fixtures.annotation(Rois.line(5, 5, 50, 80), null));
		if (style.equals("4"))
			Fixtures.metadata(line, null, null); // an empty metadata map: counted in nFields but not written (QuPath 0.6)
		PathObject polyline = made(Fixtures.annotation(Rois.polyline(f(0, 10, 20, 30), f(0, 5, 0, 5)), null));
		PathObject points = made(Fixtures.annotation(Rois.points(f(1, 3, 5.5), f(2, 4, 6.25)), tumor));
		PathObject area = made(Fixtures.annotation(Rois.area(
				new float[][] {f(300, 400, 400, 300), f(330, 330, 370, 370), f(450, 500, 500, 450)},
				new float[][] {f(300, 300, 400, 400), f(330, 370, 370, 330), f(300, 300, 350, 350)}), stroma));
		PathObject geometry = made(Fixtures.annotation(Rois.wkb(wkb()), positive));
		Fixtures.set(geometry, "wkb", null, false, ids ? new UUID(0xABCD, counter) : null);
		PathObject mass = made(Fixtures.annotation(Rois.rectangle(10.5, 20.25, 30, 40), tumor));
		Fixtures.set(mass, "left mass", 0xFF0A141E, true, ids ? new UUID(0xABCD, counter) : null);
		PathObject tile = made(Fixtures.tile(Rois.rectangle(600, 600, 50, 50)));
		PathObject core = made(Fixtures.core(Rois.ellipse(700, 700, 100, 100), "A-1", false));
		Fixtures.set(core, "A-1", null, false, ids ? new UUID(0xABCD, counter) : null);
		PathObject plugin = made(Fixtures.plugin(Rois.polygon(f(800, 810, 805), f(800, 800, 810), false)));
		Fixtures.add(root, a, line, polyline, points, area, geometry, mass, tile, core, plugin);

		try (ObjectOutputStream out = new ObjectOutputStream(new FileOutputStream(args[1]))) {
			if (style.equals("0.2")) {
				out.writeUTF("Data file version 2");
				out.writeObject("Image path: /images/slide 1.tif");
			} else {
				String server = "{\"builderType\":\"uri\",\"providerClassName\":\"qupath.lib.images.servers.bioformats.BioFormatsServerBuilder\","
						+ "\"uri\":\"file:/images/slide%201.tif\",\"args\":[\"--series\",\"0\"],\"metadata\":{\"width\":1000,\"height\":1000}}";
				if (!style.equals("0.3"))
					server = "{\"builderType\":\"rotated\",\"rotation\":\"ROTATE_90\",\"builder\":" + server + "}";
				String version = style.equals("0.3") ? "0.3.2" : style.equals("0.6") ? "0.6.0" : "0.7.0";
				out.writeUTF("Data file version " + (style.equals("4") ? 4 : 3));
				out.writeObject("{\"dataVersion\":" + (style.equals("4") ? 4 : 3) + ",\"qupathVersion\":\"" + version + "\",\"server\":" + server + "}");
			}
			out.writeObject(Locale.US);
			out.writeObject(style.equals("0.2") ? ImageData.ImageType.BRIGHTFIELD_H_E : ImageData.ImageType.FLUORESCENCE);
			out.writeObject(style.equals("0.2") ? new ColorDeconvolutionStains("{\"Name\" : \"H&E default\"}") : null);
			out.writeObject(new Workflow("setImageType('FLUORESCENCE');"));
			out.writeObject(new PathObjectHierarchy(root, List.of(core), 1));
			HashMap<String, Object> properties = new HashMap<>();
			properties.put("note", "héllo \u0000 wörld \uD83D\uDE00"); // modified UTF-8: NUL and a surrogate pair
			properties.put("plugin", new PluginProperty());
			out.writeObject(properties);
			out.writeObject("EOF");
		}
	}
}
