"""Java frameworks and servers from command lines, jar manifests and install trees.

Fixture jars carry the real manifest keys of each layout:
- Spring Boot executable jars: ``Main-Class`` = a loader launcher, ``Spring-Boot-Version``
  (docs.spring.io/spring-boot/specification/executable-jar/launching.html); the pre-3.2
  launcher is ``org.springframework.boot.loader.JarLauncher``.
- Quarkus fast-jar: ``quarkus-app/quarkus-run.jar`` with ``lib/boot`` and ``lib/main``
  named ``groupId.artifactId-version.jar`` (quarkus.io/guides/packaging,
  insights-runtime-extractor config.toml).
- WildFly/EAP: ``version.txt`` "<name> - Version <v>", product module manifest
  ``JBoss-Product-Release-Name/-Version`` (insights-runtime-extractor fpr_java_jboss_modules).
Maven Central is not reachable from CI, so these are built here with zipfile.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from fingerprints.base import ProcessView
from fingerprints.detectors.javaapps import detect_apps, parse_command
from fingerprints.reading.elf import bytes_reader
from fingerprints.reading.rootfs import ConfinedRoot


def _jar(path: Path, manifest: dict[str, str], members: dict[str, bytes] | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "Manifest-Version: 1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in manifest.items())
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("META-INF/MANIFEST.MF", text + "\r\n")
        for name, data in (members or {}).items():
            zf.writestr(name, data)


def _view(
    root: Path, argv: list[str], cwd: str = "/", env: dict[str, str] | None = None
) -> ProcessView:
    return ProcessView(
        pid=1,
        comm="java",
        argv=argv,
        environ=env or {},
        cwd=cwd,
        exe="/opt/jdk/bin/java",
        maps=["/opt/jdk/lib/server/libjvm.so"],
        root=ConfinedRoot(str(root)),
        read_exe=bytes_reader(b""),
    )


@pytest.mark.parametrize(
    "launcher",
    [
        "org.springframework.boot.loader.JarLauncher",
        "org.springframework.boot.loader.launch.JarLauncher",
        "org.springframework.boot.loader.launch.WarLauncher",
    ],
)
def test_spring_boot_executable_jar(tmp_path: Path, launcher: str) -> None:
    _jar(
        tmp_path / "app/app.jar",
        {
            "Main-Class": launcher,
            "Start-Class": "com.example.Application",
            "Spring-Boot-Version": "3.4.3",
            "Spring-Boot-Classes": "BOOT-INF/classes/",
            "Spring-Boot-Lib": "BOOT-INF/lib/",
        },
    )
    view = _view(tmp_path, ["java", "-Xmx512m", "-jar", "app.jar", "--server.port=8080"], "/app")
    assert detect_apps(view) == [("Spring Boot", "3.4.3")]


def test_plain_jar_is_no_framework(tmp_path: Path) -> None:
    _jar(tmp_path / "app.jar", {"Main-Class": "com.example.Main", "Implementation-Version": "1"})
    assert detect_apps(_view(tmp_path, ["java", "-jar", "/app.jar"])) == []


def test_quarkus_fast_jar_version_from_lib_main(tmp_path: Path) -> None:
    app = tmp_path / "deployments/quarkus-app"
    _jar(
        app / "quarkus-run.jar",
        {
            "Main-Class": "io.quarkus.bootstrap.runner.QuarkusEntryPoint",
            "Class-Path": "lib/boot/io.quarkus.quarkus-bootstrap-runner-3.15.3.redhat-00002.jar",
        },
    )
    (app / "lib/main").mkdir(parents=True)
    (app / "lib/main/io.quarkus.quarkus-core-3.15.3.redhat-00002.jar").write_bytes(b"")
    (app / "lib/main/io.vertx.vertx-core-4.5.10.jar").write_bytes(b"")
    view = _view(tmp_path, ["java", "-jar", "/deployments/quarkus-app/quarkus-run.jar"])
    assert detect_apps(view) == [("Quarkus", "3.15.3.redhat-00002")]


def test_quarkus_version_from_runner_manifest_when_lib_main_is_absent(tmp_path: Path) -> None:
    app = tmp_path / "q"
    runner = "lib/boot/io.quarkus.quarkus-bootstrap-runner-3.13.0.jar"
    _jar(
        app / "quarkus-run.jar",
        {"Main-Class": "io.quarkus.bootstrap.runner.QuarkusEntryPoint", "Class-Path": runner},
    )
    _jar(app / runner, {"Implementation-Version": "3.13.0"})
    assert detect_apps(_view(tmp_path, ["java", "-jar", "/q/quarkus-run.jar"])) == [
        ("Quarkus", "3.13.0")
    ]


def test_tomcat_via_classpath_reads_bootstrap_manifest(tmp_path: Path) -> None:
    _jar(
        tmp_path / "usr/local/tomcat/bin/bootstrap.jar",
        {"Main-Class": "org.apache.catalina.startup.Bootstrap", "Implementation-Version": "11.0.1"},
    )
    argv = [
        "/opt/java/openjdk/bin/java",
        "-Djava.util.logging.config.file=/usr/local/tomcat/conf/logging.properties",
        "-classpath",
        "/usr/local/tomcat/bin/bootstrap.jar:/usr/local/tomcat/bin/tomcat-juli.jar",
        "-Dcatalina.home=/usr/local/tomcat",
        "org.apache.catalina.startup.Bootstrap",
        "start",
    ]
    assert detect_apps(_view(tmp_path, argv)) == [("Apache Tomcat", "11.0.1")]


def test_wildfly_version_txt(tmp_path: Path) -> None:
    home = tmp_path / "opt/server"
    home.mkdir(parents=True)
    (home / "version.txt").write_text("WildFly Full - Version 30.0.1.Final\n")
    _jar(home / "jboss-modules.jar", {"Main-Class": "org.jboss.modules.Main"})
    argv = [
        "java",
        "-D[Standalone]",
        "-jar",
        "/opt/server/jboss-modules.jar",
        "-mp",
        "/opt/server/modules",
    ]
    assert detect_apps(_view(tmp_path, argv, env={"JBOSS_HOME": "/opt/server"})) == [
        ("WildFly Full", "30.0.1.Final")
    ]


def test_eap_product_module_manifest_with_home_from_property(tmp_path: Path) -> None:
    home = tmp_path / "opt/eap"
    product = home / "modules/system/layers/base/org/jboss/as/product/main/dir/META-INF"
    product.mkdir(parents=True)
    (product / "MANIFEST.MF").write_text(
        "Manifest-Version: 1.0\n"
        "JBoss-Product-Release-Name: Red Hat JBoss Enterprise Application Platform\n"
        "JBoss-Product-Release-Version: 8.0 Update 6.1\n"
    )
    argv = ["java", "-Djboss.home.dir=/opt/eap", "-jar", "/opt/eap/jboss-modules.jar"]
    assert detect_apps(_view(tmp_path, argv)) == [
        ("Red Hat JBoss Enterprise Application Platform", "8.0 Update 6.1")
    ]


def test_wildfly_product_conf_jar(tmp_path: Path) -> None:
    main = tmp_path / "opt/jboss/wildfly/modules/system/layers/base/org/jboss/as/product/main"
    _jar(
        main / "wildfly-feature-pack-product-conf-34.0.0.Final.jar",
        {"JBoss-Product-Release-Name": "WildFly", "JBoss-Product-Release-Version": "34.0.0.Final"},
    )
    argv = ["java", "-jar", "/opt/jboss/wildfly/jboss-modules.jar", "-mp", "modules"]
    assert detect_apps(_view(tmp_path, argv)) == [("WildFly", "34.0.0.Final")]


def test_kafka_from_classpath_jar_name(tmp_path: Path) -> None:
    argv = [
        "java",
        "-Xmx1G",
        "-cp",
        "/opt/kafka/libs/kafka_2.13-3.7.0.jar:/opt/kafka/libs/x.jar",
        "kafka.Kafka",
        "config/server.properties",
    ]
    assert detect_apps(_view(tmp_path, argv)) == [("Apache Kafka", "3.7.0")]


def test_hostile_jar_yields_no_version_and_no_crash(tmp_path: Path) -> None:
    (tmp_path / "app.jar").write_bytes(b"PK\x03\x04" + b"\xff" * 4096)
    (tmp_path / "loop.jar").symlink_to("loop.jar")
    assert detect_apps(_view(tmp_path, ["java", "-jar", "/app.jar"])) == []
    assert detect_apps(_view(tmp_path, ["java", "-jar", "/loop.jar"])) == []


def test_command_line_parsing() -> None:
    cmd = parse_command(
        [
            "java",
            "--add-opens",
            "java.base/java.lang=ALL-UNNAMED",
            "-Dx=y",
            "-cp",
            "a:b",
            "com.Main",
            "-jar",
            "z",
        ]
    )
    assert (cmd.main_class, cmd.classpath, cmd.jar, cmd.properties) == (
        "com.Main",
        ["a", "b"],
        None,
        {"x": "y"},
    )
    assert parse_command(["java", "-m", "mod/com.Main"]).main_class == "com.Main"
    assert parse_command(["java"]).main_class is None


def test_spring_boot_launcher_in_extracted_layers_uses_the_working_directory(
    tmp_path: Path,
) -> None:
    # Spring Boot's layered Docker images: `java org.springframework.boot.loader.launch.
    # JarLauncher` run in the extracted directory, the jar's manifest at META-INF/.
    meta = tmp_path / "application/META-INF"
    meta.mkdir(parents=True)
    (meta / "MANIFEST.MF").write_text(
        "Manifest-Version: 1.0\nMain-Class: org.springframework.boot.loader.launch.JarLauncher\n"
        "Spring-Boot-Version: 3.5.3\n"
    )
    argv = ["java", "org.springframework.boot.loader.launch.JarLauncher"]
    assert detect_apps(_view(tmp_path, argv, cwd="/application")) == [("Spring Boot", "3.5.3")]


@pytest.mark.parametrize(
    ("file", "name", "product"),
    [
        ("openliberty.properties", "Open Liberty", "Open Liberty"),
        ("WebSphereApplicationServer.properties", "WebSphere Application Server", None),
    ],
)
def test_liberty_from_its_launcher_and_version_file(
    tmp_path: Path, file: str, name: str, product: str | None
) -> None:
    """The `server` script runs `java … -jar <wlp>/bin/tools/ws-server.jar <server>`; the
    install's lib/versions/<product>.properties names the product and its version."""
    versions = tmp_path / "opt/ol/wlp/lib/versions"
    versions.mkdir(parents=True)
    (versions / file).write_text(
        "# generated\ncom.ibm.websphere.productId=io.openliberty\n"
        f"com.ibm.websphere.productName={name}\n"
        "com.ibm.websphere.productVersion=24.0.0.11\n"
    )
    _jar(tmp_path / "opt/ol/wlp/bin/tools/ws-server.jar", {"Main-Class": "wlp.lib.extract.Main"})
    argv = ["java", "-javaagent:/opt/ol/wlp/bin/tools/ws-javaagent.jar", "-jar",
            "/opt/ol/wlp/bin/tools/ws-server.jar", "defaultServer"]  # fmt: skip
    assert detect_apps(_view(tmp_path, argv)) == [(product or name, "24.0.0.11")]


def test_liberty_without_a_version_file_is_still_named(tmp_path: Path) -> None:
    argv = ["java", "-jar", "/opt/ol/wlp/bin/tools/ws-server.jar", "defaultServer"]
    assert detect_apps(_view(tmp_path, argv)) == [("Open Liberty", None)]


def test_micronaut_fat_jar_keeps_the_core_maven_metadata(tmp_path: Path) -> None:
    _jar(
        tmp_path / "app/app-0.1-all.jar",
        {"Main-Class": "example.Application"},
        {
            "META-INF/maven/io.micronaut/micronaut-core/pom.properties": (
                b"artifactId=micronaut-core\ngroupId=io.micronaut\nversion=4.7.6\n"
            ),
            "example/Application.class": b"\xca\xfe\xba\xbe",
        },
    )
    argv = ["java", "-jar", "app-0.1-all.jar"]
    assert detect_apps(_view(tmp_path, argv, cwd="/app")) == [("Micronaut", "4.7.6")]


def test_micronaut_on_the_classpath_and_a_plain_fat_jar(tmp_path: Path) -> None:
    argv = ["java", "-cp", "/app/lib/micronaut-core-4.7.6.jar:/app/app.jar", "example.Application"]
    assert detect_apps(_view(tmp_path, argv)) == [("Micronaut", "4.7.6")]
    _jar(tmp_path / "plain.jar", {"Main-Class": "example.Main"}, {"example/Main.class": b"x"})
    assert detect_apps(_view(tmp_path, ["java", "-jar", "/plain.jar"])) == []
