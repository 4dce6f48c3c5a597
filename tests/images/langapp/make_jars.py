# Builds the test jars inside the image: app.jar (Main manifest) with log4j-core 2.14.1
# nested as a fat jar carries it (BOOT-INF/lib), and a plain unused-1.0.jar.
import io
import os
import zipfile


def jar(entries):
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name, data in entries:
            z.writestr(name, data)
    return out.getvalue()


log4j = jar([
    ("META-INF/maven/org.apache.logging.log4j/log4j-core/pom.properties",
     "groupId=org.apache.logging.log4j\nartifactId=log4j-core\nversion=2.14.1\n"),
    ("org/apache/logging/log4j/core/Logger.class", b"\xca\xfe\xba\xbe"),
])
app = jar([
    ("META-INF/MANIFEST.MF",
     "Manifest-Version: 1.0\nImplementation-Title: app\nImplementation-Version: 1.0\n"),
    ("com/example/App.class", b"\xca\xfe\xba\xbe"),
    ("BOOT-INF/lib/log4j-core-2.14.1.jar", log4j),
])
unused = jar([
    ("META-INF/maven/org.example/unused-lib/pom.properties",
     "groupId=org.example\nartifactId=unused-lib\nversion=1.0\n"),
])
os.makedirs("/app/lib", exist_ok=True)
with open("/app/lib/app.jar", "wb") as f:
    f.write(app)
with open("/app/lib/unused-1.0.jar", "wb") as f:
    f.write(unused)
