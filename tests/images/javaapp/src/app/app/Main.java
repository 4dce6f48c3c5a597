package app;

import org.apache.commons.text.StringSubstitutor;

/**
 * The test app: substitutes one variable through commons-text (so the JVM opens that
 * jar) and never touches snakeyaml (on the class path too, never opened), then idles
 * (or exits, with --once).
 */
public final class Main {
    public static void main(String[] args) throws InterruptedException {
        String line = new StringSubstitutor("name", "java").replace("${name} up");
        System.out.println(line);
        System.out.flush();
        // --once: exit (the detection scenarios start the JVM, they do not keep it).
        if (args.length > 0 && args[0].equals("--once")) {
            return;
        }
        Thread.sleep(Long.MAX_VALUE);
    }
}
