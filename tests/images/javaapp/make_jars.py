# Packs the compiled classes (build/<jar>/) into the test jars under /app/lib and
# /opt/agent, each with the metadata the scanner's Maven cataloguer reads
# (META-INF/maven/GROUP/ARTIFACT/pom.properties) or the JVM needs (Main-Class,
# Premain-Class).
import os
import sys
import zipfile

build = sys.argv[1]


def jar(path, classes, entries):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            z.writestr(name, data)
        top = os.path.join(build, classes)
        for dirpath, _, files in sorted(os.walk(top)):
            for f in sorted(files):
                full = os.path.join(dirpath, f)
                z.write(full, os.path.relpath(full, top))


def pom(group, artifact, version):
    return (f"META-INF/maven/{group}/{artifact}/pom.properties",
            f"groupId={group}\nartifactId={artifact}\nversion={version}\n")


manifest = "Manifest-Version: 1.0\n"
jar("/app/lib/app.jar", "app",
    [("META-INF/MANIFEST.MF", manifest + "Main-Class: app.Main\n")])
jar("/app/lib/commons-text-1.9.jar", "commons-text",
    [pom("org.apache.commons", "commons-text", "1.9")])
jar("/app/lib/snakeyaml-1.33.jar", "snakeyaml", [pom("org.yaml", "snakeyaml", "1.33")])
jar("/opt/agent/agent.jar", "agent",
    [("META-INF/MANIFEST.MF", manifest + "Premain-Class: agent.Agent\n")])
