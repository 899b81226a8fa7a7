package qupath.lib.measurements;

import java.io.Serializable;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** QuPath's measurement lists as serialized: NumericMeasurementList.FloatList (0.2 to 0.5) and DefaultMeasurementList. */
public final class Measurements {
	private Measurements() {}

	/** A FloatList; lists built from the same names list share it, as QuPath's name pool makes them do. */
	public static Object floatList(List<String> names, float[] values, boolean withMap) {
		return new NumericMeasurementList.FloatList(names, values, withMap);
	}

	public static Object defaultList(List<String> names, double[] values) {
		DefaultMeasurementList list = new DefaultMeasurementList();
		for (int i = 0; i < values.length; i++)
			list.list.add(new DoubleMeasurement(names.get(i), values[i]));
		return list;
	}
}

class NumericMeasurementList {
	abstract static class AbstractNumericMeasurementList implements Serializable {
		private static final long serialVersionUID = 1L;
		List<String> names;
		boolean isClosed = true;
		private Map<String, Integer> map;

		AbstractNumericMeasurementList(List<String> names, boolean withMap) {
			this.names = names;
			if (withMap) {
				map = new HashMap<>();
				for (int i = 0; i < names.size(); i++)
					map.put(names.get(i), i);
			}
		}
	}

	public static class FloatList extends AbstractNumericMeasurementList {
		private static final long serialVersionUID = 1L;
		private float[] values;

		FloatList(List<String> names, float[] values, boolean withMap) {
			super(names, withMap);
			this.values = values;
		}
	}
}

class DefaultMeasurementList implements Serializable {
	private static final long serialVersionUID = 1L;
	ArrayList<DoubleMeasurement> list = new ArrayList<>();
}

class DoubleMeasurement implements Serializable {
	private static final long serialVersionUID = 1L;
	private final String name;
	private final double value;

	DoubleMeasurement(String name, double value) {
		this.name = name;
		this.value = value;
	}
}
