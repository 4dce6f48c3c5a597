package org.apache.commons.text;

/**
 * A stand-in for commons-text's class of the same name (the jar carries
 * org.apache.commons:commons-text 1.9's Maven coordinates): one variable, replaced.
 */
public final class StringSubstitutor {
    private final String key;
    private final String value;

    public StringSubstitutor(String key, String value) {
        this.key = key;
        this.value = value;
    }

    public String replace(String source) {
        return source.replace("${" + key + "}", value);
    }
}
