"""Frameworks and application servers inside a JVM, named as insights-runtime-extractor does.

The command line says how the JVM was started (``-jar X``, ``-cp … MainClass``); the jar
manifests and install trees it points at carry the versions: ``Spring-Boot-Version`` of
the executable jar, Quarkus' fast-jar ``lib/main`` names, Tomcat's ``bootstrap.jar``, and
the three WildFly / JBoss EAP product sources. Beyond that tool: Open Liberty (its
``ws-server.jar`` launcher and ``lib/versions/*.properties``), Micronaut (the
``micronaut-core`` Maven metadata a fat jar keeps, or the jar on the classpath) and
Apache Kafka. Everything is read through the confined root with capped jar reads; a
source that cannot be read is simply not evidence.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field

from fingerprints.base import ContainerRoot, FingerprintError, ProcessView
from fingerprints.reading.evidence import absolute, listdir, read_text
from fingerprints.reading.jar import Jar, parse_manifest
from fingerprints.reading.rootfs import BudgetExceeded

Runtime = tuple[str, str | None]

SPRING_LAUNCHERS = frozenset(
    {
        "org.springframework.boot.loader.JarLauncher",
        "org.springframework.boot.loader.WarLauncher",
        "org.springframework.boot.loader.PropertiesLauncher",
        "org.springframework.boot.loader.launch.JarLauncher",
        "org.springframework.boot.loader.launch.WarLauncher",
        "org.springframework.boot.loader.launch.PropertiesLauncher",
    }
)
QUARKUS_MAIN = "io.quarkus.bootstrap.runner.QuarkusEntryPoint"
TOMCAT_MAIN = "org.apache.catalina.startup.Bootstrap"
JBOSS_MODULES_MAIN = "org.jboss.modules.Main"
KAFKA_MAIN = "kafka.Kafka"

_OPTS_WITH_VALUE = frozenset(
    {
        "-p", "--module-path", "--upgrade-module-path", "--add-modules", "--limit-modules",
        "--add-reads", "--add-exports", "--add-opens", "--patch-module", "--source",
        "--enable-native-access", "--describe-module", "-d",
    }
)  # fmt: skip
_CLASSPATH_OPTS = frozenset({"-cp", "-classpath", "--class-path"})
_QUARKUS_CORE = re.compile(r"^io\.quarkus\.quarkus-core-(\d[^/]*)\.jar$")
_KAFKA_JAR = re.compile(r"(?:^|/)kafka_\d+\.\d+-(\d[\w.-]*?)\.jar$")
_MICRONAUT_JAR = re.compile(r"(?:^|/)micronaut-core-(\d[\w.-]*?)\.jar$")
MICRONAUT_POM = "META-INF/maven/io.micronaut/micronaut-core/pom.properties"
LIBERTY_LAUNCHER = "/bin/tools/ws-server.jar"
# Open Liberty first; IBM's WebSphere Liberty ships its own file beside it
LIBERTY_VERSION_FILES = ("openliberty.properties", "WebSphereApplicationServer.properties")
_PRODUCT_DIR = "modules/system/layers/base/org/jboss/as/product/main"


@dataclass
class JavaCommand:
    """What a ``java`` command line asks for."""

    jar: str | None = None
    main_class: str | None = None
    classpath: list[str] = field(default_factory=list)
    properties: dict[str, str] = field(default_factory=dict)


def parse_command(argv: list[str]) -> JavaCommand:
    """The launcher options up to the main class or ``-jar`` (application args ignored)."""
    cmd = JavaCommand()
    args = iter(argv[1:])
    for arg in args:
        if arg == "-jar":
            cmd.jar = next(args, None)
            break
        if arg in _CLASSPATH_OPTS:
            cmd.classpath = [p for p in next(args, "").split(":") if p]
        elif arg.startswith("--class-path="):
            cmd.classpath = [p for p in arg.partition("=")[2].split(":") if p]
        elif arg in ("-m", "--module"):
            cmd.main_class = next(args, "").rpartition("/")[2] or None
            break
        elif arg.startswith("-D"):
            key, _, value = arg[2:].partition("=")
            cmd.properties[key] = value
        elif arg in _OPTS_WITH_VALUE:
            next(args, None)
        elif not arg.startswith("-"):
            cmd.main_class = arg
            break
    return cmd


def _manifest(root: ContainerRoot, path: str) -> dict[str, str]:
    return _open_jar(root, path)[1]


def _quarkus(root: ContainerRoot, run_jar: str, manifest: dict[str, str]) -> Runtime:
    """Quarkus version: the fast-jar's quarkus-core name, else the runner's manifest."""
    app_dir = posixpath.dirname(run_jar)
    for name in listdir(root, f"{app_dir}/lib/main"):
        core = _QUARKUS_CORE.match(name)
        if core:
            return ("Quarkus", core.group(1))
    for entry in manifest.get("Class-Path", "").split():
        if "quarkus-bootstrap-runner" in entry or "quarkus-core" in entry:
            version = _manifest(root, posixpath.join(app_dir, entry)).get("Implementation-Version")
            if version:
                return ("Quarkus", version)
    return ("Quarkus", None)


def _properties(text: str) -> dict[str, str]:
    """``key=value`` lines of a Java properties file (comments and blanks skipped)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")) and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def _liberty(root: ContainerRoot, launcher: str) -> list[Runtime]:
    """Open Liberty (or WebSphere Liberty): product name and version from the install."""
    wlp = launcher.removesuffix(LIBERTY_LAUNCHER)
    for name in LIBERTY_VERSION_FILES:
        text = read_text(root, f"{wlp}/lib/versions/{name}")
        if text:
            props = _properties(text)
            product = props.get("com.ibm.websphere.productName") or "Open Liberty"
            return [(product, props.get("com.ibm.websphere.productVersion") or None)]
    return [("Open Liberty", None)]


def _micronaut_in_jar(archive: Jar | None) -> Runtime | None:
    """Micronaut in a fat jar: the core's Maven metadata survives shading."""
    if archive is None or not archive.has(MICRONAUT_POM):
        return None
    try:
        text = archive.read(MICRONAUT_POM).decode("utf-8", "replace")
    except BudgetExceeded:
        raise
    except FingerprintError:
        return ("Micronaut", None)
    return ("Micronaut", _properties(text).get("version") or None)


def _open_jar(root: ContainerRoot, path: str) -> tuple[Jar | None, dict[str, str]]:
    """The jar (None if unreadable) and its manifest ({} if none)."""
    try:
        archive = Jar(root, path)
        return archive, archive.manifest()
    except BudgetExceeded:
        raise
    except FingerprintError:
        return None, {}


def _executable_jar(view: ProcessView, jar: str) -> list[Runtime]:
    root = view.root
    if jar.endswith(LIBERTY_LAUNCHER):
        return _liberty(root, jar)
    archive, manifest = _open_jar(root, jar)
    main = manifest.get("Main-Class", "")
    if main in SPRING_LAUNCHERS or "Spring-Boot-Version" in manifest:
        return [("Spring Boot", manifest.get("Spring-Boot-Version") or None)]
    if main == QUARKUS_MAIN:
        return [_quarkus(root, jar, manifest)]
    if main == TOMCAT_MAIN:
        return [("Apache Tomcat", manifest.get("Implementation-Version") or None)]
    if main == JBOSS_MODULES_MAIN or jar.endswith("jboss-modules.jar"):
        home = view.environ.get("JBOSS_HOME") or parse_command(view.argv).properties.get(
            "jboss.home.dir"
        )
        return jboss_product(root, absolute(view, home) if home else posixpath.dirname(jar))
    micronaut = _micronaut_in_jar(archive)
    return [micronaut] if micronaut is not None else []


def jboss_product(root: ContainerRoot, home: str) -> list[Runtime]:
    """WildFly / JBoss EAP name and version from the three sources IRE reads, in its order."""
    text = read_text(root, f"{home}/version.txt")
    if text and "- Version" in text:
        name, _, version = text.strip().splitlines()[0].partition("- Version")
        return [(name.strip(), version.strip() or None)]
    product = f"{home}/{_PRODUCT_DIR}"
    manifest_text = read_text(root, f"{product}/dir/META-INF/MANIFEST.MF")
    manifests = [parse_manifest(manifest_text)] if manifest_text else []
    for entry in listdir(root, product):
        if entry.startswith("wildfly-feature-pack-product-conf") and entry.endswith(".jar"):
            manifests.append(_manifest(root, f"{product}/{entry}"))
    for manifest in manifests:
        product_name = manifest.get("JBoss-Product-Release-Name")
        if product_name:
            return [(product_name, manifest.get("JBoss-Product-Release-Version") or None)]
    return []


def _classpath_apps(view: ProcessView, cmd: JavaCommand) -> list[Runtime]:
    root = view.root
    # without -cp the JVM uses $CLASSPATH, else the working directory (layered images
    # run the Spring Boot launcher from the extracted dir this way)
    entries = cmd.classpath or [p for p in view.environ.get("CLASSPATH", "").split(":") if p]
    classpath = [absolute(view, p) for p in entries or ["."]]
    if cmd.main_class == TOMCAT_MAIN:
        for entry in classpath:
            if entry.endswith("bootstrap.jar"):
                version = _manifest(root, entry).get("Implementation-Version")
                return [("Apache Tomcat", version or None)]
        return [("Apache Tomcat", None)]
    if cmd.main_class in SPRING_LAUNCHERS:
        for entry in classpath:
            text = read_text(root, f"{entry}/META-INF/MANIFEST.MF")
            version = parse_manifest(text).get("Spring-Boot-Version") if text else None
            if version:
                return [("Spring Boot", version)]
        return [("Spring Boot", None)]
    if cmd.main_class == QUARKUS_MAIN:
        for entry in classpath:
            if entry.endswith("quarkus-run.jar"):
                return [_quarkus(root, entry, _manifest(root, entry))]
        return [("Quarkus", None)]
    if cmd.main_class == KAFKA_MAIN:
        for entry in classpath:
            kafka = _KAFKA_JAR.search(entry)
            if kafka:
                return [("Apache Kafka", kafka.group(1))]
        return [("Apache Kafka", None)]
    for entry in classpath:
        micronaut = _MICRONAUT_JAR.search(entry)
        if micronaut:
            return [("Micronaut", micronaut.group(1))]
    return []


def detect_apps(view: ProcessView) -> list[Runtime]:
    """Frameworks/servers this JVM runs ([] when none is recognised)."""
    cmd = parse_command(view.argv)
    if cmd.jar:
        return _executable_jar(view, absolute(view, cmd.jar))
    return _classpath_apps(view, cmd)
