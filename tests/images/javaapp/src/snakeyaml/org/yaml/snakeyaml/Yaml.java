package org.yaml.snakeyaml;

/** A stand-in for snakeyaml's entry class (the jar carries org.yaml:snakeyaml 1.33's coordinates). */
public final class Yaml {
    public Object load(String text) {
        return text;
    }
}
