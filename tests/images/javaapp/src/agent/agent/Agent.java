package agent;

/** A Java agent (Premain-Class): what a startup hook in JAVA_TOOL_OPTIONS would load. */
public final class Agent {
    public static void premain(String args) {
        System.out.println("agent loaded");
        System.out.flush();
    }
}
