# Stands in for a JVM's class loader (the image has no Java): opens app.jar and reads a
# class entry, as a JVM does when it loads the application's classes. lib/unused-1.0.jar
# is never opened.
import time
import zipfile

with zipfile.ZipFile("/app/lib/app.jar") as jar:
    jar.read("com/example/App.class")
print("jar up", flush=True)
time.sleep(1 << 30)
