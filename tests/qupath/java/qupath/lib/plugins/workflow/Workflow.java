package qupath.lib.plugins.workflow;

import java.io.Externalizable;
import java.io.IOException;
import java.io.ObjectInput;
import java.io.ObjectOutput;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** QuPath's command history as serialized. */
public class Workflow implements Externalizable {
	private static final long serialVersionUID = 1L;
	private List<Object> steps = new ArrayList<>();

	public Workflow(String... scripts) {
		for (String script : scripts)
			steps.add(new DefaultScriptableWorkflowStep("Run script", script));
	}

	@Override
	public void writeExternal(ObjectOutput out) throws IOException {
		out.writeInt(1);
		out.writeInt(steps.size());
		for (Object step : steps)
			out.writeObject(step);
	}

	@Override
	public void readExternal(ObjectInput in) { throw new UnsupportedOperationException("write only"); }
}

class DefaultScriptableWorkflowStep implements Serializable {
	private static final long serialVersionUID = 1L;
	private String name;
	private String script;
	private Map<String, ?> map;

	DefaultScriptableWorkflowStep(String name, String script) {
		this.name = name;
		this.script = script;
		LinkedHashMap<String, Object> m = new LinkedHashMap<>();
		m.put("threshold", 0.5);
		this.map = m;
	}
}
