package qupath.lib.roi;

import java.io.Serializable;

/**
 * QuPath's ROI serialization proxies (identical in QuPath 0.2 to 0.7): same class names, serialVersionUIDs
 * and fields, so the bytes written are the bytes QuPath writes for its ROIs (through writeReplace).
 */
public final class Rois {
	private Rois() {}

	public static Object polygon(float[] x, float[] y, boolean withStats) {
		return new PolygonROI.SerializationProxy(x, y, withStats ? new ClosedShapeStatistics() : null);
	}
	public static Object polyline(float[] x, float[] y) { return new PolylineROI.SerializationProxy(x, y); }
	public static Object points(float[] x, float[] y) { return new PointsROI.SerializationProxy(x, y); }
	public static Object rectangle(double x, double y, double w, double h) { return new RectangleROI.SerializationProxy(x, y, x + w, y + h); }
	public static Object ellipse(double x, double y, double w, double h) { return new EllipseROI.SerializationProxy(x, y, x + w, y + h); }
	public static Object line(double x, double y, double x2, double y2) { return new LineROI.SerializationProxy(x, y, x2, y2); }
	public static Object area(float[][] x, float[][] y) { return new AreaROI.SerializationProxy(x, y); }
	public static Object wkb(byte[] wkb) { return new GeometryROI.WKBSerializationProxy(wkb); }
}

class ClosedShapeStatistics implements Serializable {
	private static final long serialVersionUID = 1L;
	private double areaCached = 12.5, perimeterCached = Double.NaN;
	private float centroidXCached = 1.5f, centroidYCached = Float.NaN;
	private double minX = Double.NaN, maxX = Double.NaN, minY = Double.NaN, maxY = Double.NaN;
	private int nVertices = 4;
}

class PolygonROI {
	static class SerializationProxy implements Serializable {
		private static final long serialVersionUID = 1L;
		private final float[] x, y;
		private final String name = null;
		private final int c = -1, z = 0, t = 0;
		private ClosedShapeStatistics stats;
		SerializationProxy(float[] x, float[] y, ClosedShapeStatistics stats) { this.x = x; this.y = y; this.stats = stats; }
	}
}

class PolylineROI {
	static class SerializationProxy implements Serializable {
		private static final long serialVersionUID = 1L;
		private final float[] x, y;
		private final int c = -1, z = 0, t = 0;
		SerializationProxy(float[] x, float[] y) { this.x = x; this.y = y; }
	}
}

class PointsROI {
	static class SerializationProxy implements Serializable {
		private static final long serialVersionUID = 1L;
		private final float[] x, y;
		private final String name = null;
		private final int c = -1, z = 0, t = 0;
		SerializationProxy(float[] x, float[] y) { this.x = x; this.y = y; }
	}
}

class RectangleROI {
	static class SerializationProxy implements Serializable {
		private static final long serialVersionUID = 1L;
		private final double x, x2, y, y2;
		private final String name = null;
		private final int c = -1, z = 0, t = 0;
		SerializationProxy(double x, double y, double x2, double y2) { this.x = x; this.y = y; this.x2 = x2; this.y2 = y2; }
	}
}

class EllipseROI {
	static class SerializationProxy implements Serializable {
		private static final long serialVersionUID = 1L;
		private final double x, x2, y, y2;
		private final String name = null;
		private final int c = -1, z = 0, t = 0;
		SerializationProxy(double x, double y, double x2, double y2) { this.x = x; this.y = y; this.x2 = x2; this.y2 = y2; }
	}
}

class LineROI {
	static class SerializationProxy implements Serializable {
		private static final long serialVersionUID = 1L;
		private final double x, x2, y, y2;
		private final String name = null;
		private final int c = -1, z = 0, t = 0;
		SerializationProxy(double x, double y, double x2, double y2) { this.x = x; this.y = y; this.x2 = x2; this.y2 = y2; }
	}
}

class AreaROI {
	static class SerializationProxy implements Serializable {
		private static final long serialVersionUID = 1L;
		private final float[][] x, y;
		private final String name = null;
		private final int c = -1, z = 0, t = 0;
		private ClosedShapeStatistics stats = null;
		SerializationProxy(float[][] x, float[][] y) { this.x = x; this.y = y; }
	}
}

class GeometryROI {
	static class GeometryStats implements Serializable {
		private static final long serialVersionUID = 1L;
		private double boundsMinX = 1, boundsMinY = 2, boundsMaxX = 3, boundsMaxY = 4, centroidX = 5, centroidY = 6, area = 7, length = 8;
		private String error = "Unknown";
	}

	static class WKBSerializationProxy implements Serializable {
		private static final long serialVersionUID = 1L;
		private final byte[] wkb;
		private final int c = -1, z = 0, t = 0;
		private final GeometryStats stats = new GeometryStats();
		WKBSerializationProxy(byte[] wkb) { this.wkb = wkb; }
	}
}
