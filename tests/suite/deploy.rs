//! The ways to install it, each validated with the tools that run here (there is no container
//! engine or cluster): hadolint, Compose's own config check, the Kubernetes schemas, promtool and
//! systemd-analyze. See tests/suite/common/tools.rs for how a missing tool is treated.

use crate::common::{process, tools};

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::markdown::{github_anchors, prose_lines};
use serde::Deserialize;
use serde_json::Value;
use tools::{repo_path, run_tool, temp_dir, tool};

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_path(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn yaml(relative: &str) -> Value {
    serde_norway::from_str(&read(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn default_port() -> &'static str {
    wolkvox_exporter::config::DEFAULT_LISTEN_ADDRESS.trim_start_matches(':')
}

#[test]
fn hadolint_finds_nothing_in_the_dockerfile() {
    let Some(hadolint) = tool("hadolint") else { return };
    let (ok, findings) = run_tool(&hadolint, &[repo_path("Dockerfile").to_str().unwrap()], None);
    assert!(ok && findings.trim().is_empty(), "{findings}");
}

#[test]
fn the_image_is_pinned_minimal_non_root_and_keeps_secrets_out() {
    let dockerfile = read("Dockerfile");
    let froms: Vec<&str> = dockerfile.lines().filter_map(|l| l.strip_prefix("FROM ")).collect();
    assert_eq!(froms.len(), 2, "multi-stage: {froms:?}");
    assert!(
        froms[0].contains("rust:1.") && !froms[0].contains("latest"),
        "pinned builder: {}",
        froms[0]
    );
    assert!(froms[1].starts_with("gcr.io/distroless/"), "minimal runtime: {}", froms[1]);
    let user = dockerfile.lines().rev().find_map(|l| l.strip_prefix("USER ")).expect("a USER");
    assert!(!user.starts_with("root") && !user.starts_with('0'), "runs as {user}");
    assert!(dockerfile.contains(&format!("EXPOSE {}", default_port())));
    assert!(
        dockerfile.contains(&format!(
            "org.opencontainers.image.version=\"{}\"",
            env!("CARGO_PKG_VERSION")
        )),
        "the label tracks Cargo.toml"
    );
    assert!(!dockerfile.to_lowercase().contains("token="), "no token baked in");
    let ignore = read(".dockerignore");
    assert_eq!(
        ignore.lines().find(|l| !l.starts_with('#')),
        Some("*"),
        ".dockerignore admits only listed paths"
    );
    assert!(!ignore.contains("!target") && !ignore.contains("!.git"));
}

/// Every file the build reads (the manifest, the build script, and whatever `include_str!` or
/// `include_bytes!` pulls in from src/) is copied by the Dockerfile and admitted by .dockerignore;
/// otherwise `docker build` fails although `cargo build` works here.
#[test]
fn the_image_build_context_holds_every_file_the_build_reads() {
    fn included(dir: &Path, found: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                included(&path, found);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for macro_name in ["include_str!(\"", "include_bytes!(\""] {
                for (at, _) in text.match_indices(macro_name) {
                    let rest = &text[at + macro_name.len()..];
                    let relative = &rest[..rest.find('"').unwrap()];
                    let file = path.parent().unwrap().join(relative);
                    let file = file
                        .canonicalize()
                        .unwrap_or_else(|e| panic!("{}: {relative}: {e}", path.display()));
                    let root = repo_path("").canonicalize().unwrap();
                    found.insert(file.strip_prefix(&root).unwrap().to_str().unwrap().to_owned());
                }
            }
        }
    }
    let mut needed: BTreeSet<String> =
        ["Cargo.toml", "Cargo.lock", "build.rs"].map(str::to_owned).into();
    included(&repo_path("src"), &mut needed);
    let dockerfile = read("Dockerfile");
    let copied: Vec<&str> = dockerfile
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.starts_with("--from"))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[..words.len() - 1].to_vec()
        })
        .collect();
    let ignore = read(".dockerignore");
    let admitted: Vec<&str> = ignore.lines().filter_map(|l| l.trim().strip_prefix('!')).collect();
    let under = |file: &str, entry: &str| {
        file == entry.trim_end_matches('/')
            || file.starts_with(&format!("{}/", entry.trim_end_matches('/')))
    };
    for file in &needed {
        assert!(
            copied.iter().any(|c| under(file, c)),
            "the Dockerfile does not COPY {file}, which the build reads (copied: {copied:?})"
        );
        assert!(
            admitted.iter().any(|a| under(file, a)),
            ".dockerignore keeps out {file}, which the build reads: add !{file}"
        );
    }
}

/// The Dockerfile's stages, each its instructions (name in capitals, arguments), continuation
/// lines joined and comments left out.
fn dockerfile_stages() -> Vec<Vec<(String, String)>> {
    let mut stages: Vec<Vec<(String, String)>> = Vec::new();
    let mut logical = String::new();
    for line in read("Dockerfile").lines().map(str::trim) {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if let Some(part) = line.strip_suffix('\\') {
            logical.push_str(part);
            logical.push(' ');
            continue;
        }
        logical.push_str(line);
        let text = std::mem::take(&mut logical);
        let (instruction, arguments) = text.split_once(char::is_whitespace).unwrap_or((&text, ""));
        let instruction = instruction.to_ascii_uppercase();
        if instruction == "FROM" {
            stages.push(Vec::new());
        }
        stages
            .last_mut()
            .expect("FROM comes first")
            .push((instruction, arguments.trim().to_owned()));
    }
    stages
}

/// The words of an exec-form (`["a", "b"]`) or shell-form instruction.
fn instruction_words(arguments: &str) -> Vec<String> {
    serde_json::from_str(arguments)
        .unwrap_or_else(|_| arguments.split_whitespace().map(str::to_owned).collect())
}

/// A path without its trailing slash.
fn directory(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/".to_owned() } else { trimmed.to_owned() }
}

/// The container's volume mount that holds `path`: the deepest whose mountPath it lies in.
fn mount_holding<'a>(container: &'a Value, path: &str) -> Option<&'a Value> {
    container["volumeMounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| lies_in(path, m["mountPath"].as_str().unwrap()))
        .max_by_key(|m| m["mountPath"].as_str().unwrap().len())
}

/// `path` is `mount` or lies below it.
fn lies_in(path: &str, mount: &str) -> bool {
    let (path, mount) = (directory(path), directory(mount));
    path == mount || path.starts_with(&format!("{}/", mount.trim_end_matches('/')))
}

/// Where the image's exporter keeps its state unless told otherwise: `--storage.path` in its
/// ENTRYPOINT or CMD, else `WOLKVOX_STORAGE_PATH` from ENV, else the default (`data/`) in its
/// working directory.
fn image_storage_path() -> String {
    let stages = dockerfile_stages();
    let image = stages.last().unwrap();
    let last = |name: &str| image.iter().rev().find(|(i, _)| i == name).map(|(_, a)| a.clone());
    let command: Vec<String> = ["ENTRYPOINT", "CMD"]
        .into_iter()
        .filter_map(last)
        .flat_map(|a| instruction_words(&a))
        .collect();
    let from_command = command.iter().enumerate().find_map(|(i, word)| {
        match word.strip_prefix("--storage.path") {
            Some(rest) if rest.starts_with('=') => Some(rest[1..].to_owned()),
            Some("") => command.get(i + 1).cloned(),
            _ => None,
        }
    });
    let from_env = image
        .iter()
        .filter(|(i, _)| i == "ENV")
        .flat_map(|(_, a)| {
            a.split_whitespace()
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        })
        .filter(|(k, _)| k == "WOLKVOX_STORAGE_PATH")
        .map(|(_, v)| v)
        .next_back();
    let default = wolkvox_exporter::config::DEFAULT_STORAGE_PATH;
    let path = from_command.or(from_env).unwrap_or_else(|| {
        let workdir = last("WORKDIR").expect(
            "no WORKDIR in the image: distroless' nonroot works in /home/nonroot, so the default data/ would lie on the read-only root filesystem",
        );
        Path::new(&workdir).join(default).to_str().unwrap().to_owned()
    });
    assert!(path.starts_with('/'), "the image's state directory {path:?} is not absolute");
    directory(&path)
}

/// Without a volume the state dies with the container, and with a read-only root filesystem
/// (Compose, Kubernetes) the exporter cannot even start; a volume the image's user does not own is
/// not writable either.
#[test]
fn the_image_keeps_its_state_in_a_volume_its_user_owns() {
    let stages = dockerfile_stages();
    let image = stages.last().unwrap();
    let path = image_storage_path();
    let volumes: Vec<String> = image
        .iter()
        .filter(|(i, _)| i == "VOLUME")
        .flat_map(|(_, a)| instruction_words(a))
        .map(|v| directory(&v))
        .collect();
    assert!(
        volumes.contains(&path),
        "the state directory {path} is not a VOLUME (volumes: {volumes:?})"
    );

    let user =
        image.iter().rev().find(|(i, _)| i == "USER").map(|(_, a)| a.clone()).expect("a USER");
    let owner = if user.contains(':') { user.clone() } else { format!("{user}:{user}") };
    let copy = image
        .iter()
        .filter(|(i, _)| i == "COPY")
        .map(|(_, a)| a.split_whitespace().collect::<Vec<&str>>())
        .find(|words| words.last().is_some_and(|to| directory(to) == path))
        .unwrap_or_else(|| panic!("nothing creates {path} in the image: distroless has no shell, so COPY it from the build stage"));
    assert!(
        copy.iter().any(|w| *w == format!("--chown={owner}")),
        "{path} is not copied with --chown={owner}: uid {user} could not write it, nor a new volume copied from it ({copy:?})"
    );
    // The source exists: the stage it comes from creates it.
    let stage =
        copy.iter().find_map(|w| w.strip_prefix("--from=")).expect("copied from the build stage");
    let source = copy[copy.len() - 2];
    let builder = stages
        .iter()
        .find(|instructions| {
            instructions[0]
                .1
                .to_ascii_lowercase()
                .ends_with(&format!(" as {}", stage.to_ascii_lowercase()))
        })
        .unwrap_or_else(|| panic!("no stage {stage}"));
    assert!(
        builder
            .iter()
            .any(|(i, a)| i == "RUN"
                && a.split_whitespace().any(|w| directory(w) == directory(source))),
        "the {stage} stage does not create {source}"
    );
}

/// The variables the compose file reads, set in the tests to these values only.
const COMPOSE_VARIABLES: [&str; 3] =
    ["WOLKVOX_SERVER", "WOLKVOX_TOKEN_FILE", "GRAFANA_ADMIN_PASSWORD"];
const TEST_GRAFANA_PASSWORD: &str = "a-password-for-the-test";

/// Runs `docker compose -f deploy/docker-compose.yml ARGS` with `env` as the only compose variables;
/// returns (success, stdout, stderr).
fn compose(compose: &Path, env: &[(&str, &str)], args: &[&str]) -> (bool, String, String) {
    let file = repo_path("deploy/docker-compose.yml");
    let mut command = Command::new(compose);
    command.args(["-f", file.to_str().unwrap()]).args(args);
    for variable in COMPOSE_VARIABLES {
        command.env_remove(variable);
    }
    command.envs(env.iter().copied());
    let output = command.output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

/// The resolved compose file with `env` set, and Grafana's admin password (which it requires).
fn compose_config(env: &[(&str, &str)]) -> Value {
    let Some(tool) = tool("docker-compose") else { return Value::Null };
    let mut env = env.to_vec();
    env.push(("GRAFANA_ADMIN_PASSWORD", TEST_GRAFANA_PASSWORD));
    let (ok, stdout, stderr) = compose(&tool, &env, &["config", "--quiet"]);
    assert!(
        ok && stdout.trim().is_empty() && stderr.trim().is_empty(),
        "docker compose config --quiet: {stdout}{stderr}"
    );
    let (ok, stdout, stderr) = compose(&tool, &env, &["config", "--format", "json"]);
    assert!(ok, "{stderr}");
    serde_json::from_str(&stdout).unwrap()
}

#[test]
fn compose_stack_is_valid_pinned_and_demo_by_default() {
    let demo = compose_config(&[]);
    if demo.is_null() {
        return;
    }
    let services = demo["services"].as_object().unwrap();
    for name in ["wolkvox-exporter", "prometheus", "alertmanager", "grafana"] {
        assert!(services.contains_key(name), "{name} missing");
    }
    for (name, service) in services {
        let image = service["image"].as_str().unwrap();
        let tag = image.rsplit_once(':').map(|(_, tag)| tag).unwrap_or("");
        assert!(!tag.is_empty() && tag != "latest", "{name} is not on a pinned tag: {image}");
    }
    let exporter = &demo["services"]["wolkvox-exporter"];
    assert_eq!(exporter["command"], serde_json::json!(["--demo"]));
    assert_eq!(exporter["read_only"], true);

    let real =
        compose_config(&[("WOLKVOX_SERVER", "0042"), ("WOLKVOX_TOKEN_FILE", "/srv/wolkvox/token")]);
    assert_eq!(
        real["services"]["wolkvox-exporter"]["command"],
        serde_json::json!(["--wolkvox.server=0042"])
    );
    assert_eq!(real["secrets"]["wolkvox_token"]["file"], "/srv/wolkvox/token");
}

/// The exporter's state survives `docker compose down` and a re-created container only in a
/// named volume mounted where the exporter writes it; the container's root filesystem is
/// read-only besides.
#[test]
fn compose_keeps_the_exporter_state_in_a_named_volume() {
    for env in
        [&[][..], &[("WOLKVOX_SERVER", "0042"), ("WOLKVOX_TOKEN_FILE", "/srv/wolkvox/token")][..]]
    {
        let config = compose_config(env);
        if config.is_null() {
            return;
        }
        let exporter = &config["services"]["wolkvox-exporter"];
        assert_eq!(exporter["read_only"], true);
        let args: Vec<String> = exporter["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_owned())
            .collect();
        let from_args =
            args.iter().enumerate().find_map(|(i, arg)| match arg.strip_prefix("--storage.path") {
                Some(rest) if rest.starts_with('=') => Some(rest[1..].to_owned()),
                Some("") => args.get(i + 1).cloned(),
                _ => None,
            });
        let from_env = exporter["environment"]["WOLKVOX_STORAGE_PATH"].as_str().map(str::to_owned);
        let path = match from_args.or(from_env) {
            Some(path) => path,
            // The demo keeps no state unless told where.
            None if args.iter().any(|a| a == "--demo") => continue,
            None => image_storage_path(),
        };
        assert!(
            !path.trim().is_empty(),
            "--storage.path is empty in {env:?}: nothing survives a restart"
        );
        let volume = exporter["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| lies_in(&path, v["target"].as_str().unwrap()))
            .max_by_key(|v| v["target"].as_str().unwrap().len())
            .unwrap_or_else(|| {
                panic!("nothing is mounted at {path}, where the exporter keeps its state ({env:?})")
            });
        assert_eq!(volume["type"], "volume", "a named volume at {path}, not {volume}");
        assert_ne!(volume["read_only"], true, "{volume} is read-only");
        let source = volume["source"].as_str().unwrap();
        assert!(
            config["volumes"][source].is_object(),
            "the volume {source} is declared at the top level"
        );
    }
}

/// Days in a Prometheus duration such as `400d`, `58w` or `2y` (one unit).
fn duration_days(text: &str) -> f64 {
    let split =
        text.find(|c: char| !c.is_ascii_digit()).unwrap_or_else(|| panic!("no unit in {text:?}"));
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().unwrap_or_else(|_| panic!("not a duration: {text:?}"));
    let days_per_unit = match unit {
        "y" => 365.0,
        "w" => 7.0,
        "d" => 1.0,
        "h" => 1.0 / 24.0,
        "m" => 1.0 / 1440.0,
        other => panic!("unexpected unit {other:?} in {text:?}"),
    };
    number * days_per_unit
}

#[test]
fn compose_publishes_only_on_loopback_and_keeps_prometheus_data_for_400_days() {
    let config = compose_config(&[]);
    if config.is_null() {
        return;
    }
    // Alertmanager has no authentication and Grafana an anonymous viewer: nothing may listen on
    // every interface by default.
    for (name, service) in config["services"].as_object().unwrap() {
        for port in service["ports"].as_array().into_iter().flatten() {
            assert_eq!(port["host_ip"], "127.0.0.1", "{name} publishes {port} beyond 127.0.0.1");
        }
    }
    let prometheus = &config["services"]["prometheus"];
    let args: Vec<&str> = prometheus["command"]
        .as_array()
        .expect("Prometheus' arguments are set")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let flag = |name: &str| args.iter().find_map(|a| a.strip_prefix(&format!("--{name}=")));
    let retention = flag("storage.tsdb.retention.time")
        .expect("--storage.tsdb.retention.time (the default, 15d, loses last month)");
    assert!(
        duration_days(retention) >= 400.0,
        "retention {retention} is under 400 days: the dashboards compare months"
    );
    assert_eq!(
        flag("config.file"),
        Some("/etc/prometheus/prometheus.yml"),
        "the bundled configuration"
    );
    let storage = flag("storage.tsdb.path").expect("--storage.tsdb.path");
    let volume = prometheus["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["target"] == storage)
        .unwrap_or_else(|| {
            panic!("nothing is mounted at {storage}: the data dies with the container")
        });
    assert_eq!(volume["type"], "volume", "a named volume at {storage}, not {volume}");
    let source = volume["source"].as_str().unwrap();
    assert!(
        config["volumes"][source].is_object(),
        "the volume {source} is declared at the top level"
    );
}

/// Manifests the kustomization leaves out, each named in a comment of it: they need adapting first.
const OPTIONAL_MANIFESTS: [&str; 1] = ["networkpolicy.yaml"];

/// The manifests of deploy/kubernetes/: every YAML file but the kustomization.
fn kubernetes_manifests() -> BTreeSet<String> {
    std::fs::read_dir(repo_path("deploy/kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .filter(|name| name != "kustomization.yaml")
        .collect()
}

#[test]
fn kubernetes_manifests_pass_the_schemas() {
    let Some(validate) = tool("kubernetes-validate") else { return };
    let manifests = kubernetes_manifests();
    assert!(
        manifests.len() >= 6 && OPTIONAL_MANIFESTS.iter().all(|m| manifests.contains(*m)),
        "{manifests:?}"
    );
    for manifest in manifests {
        let path = repo_path(&format!("deploy/kubernetes/{manifest}"));
        let (ok, output) = run_tool(&validate, &["--strict", path.to_str().unwrap()], None);
        // The prometheus-operator's kinds have no schema here; the tests below check them.
        let operator_kind = yaml(&format!("deploy/kubernetes/{manifest}"))["apiVersion"]
            == "monitoring.coreos.com/v1"
            && output.contains("Couldn't find schema");
        assert!(
            ok && (output.contains("passed") || operator_kind) && !output.contains("ERROR"),
            "{manifest}: {output}"
        );
    }
}

/// The one place that sets the labels Prometheus selects ServiceMonitors and PrometheusRules by:
/// the kustomization's LabelTransformer, limited to those two kinds.
#[test]
fn the_kustomization_applies_every_manifest_and_sets_the_selection_labels_in_one_place() {
    let kustomization = yaml("deploy/kubernetes/kustomization.yaml");
    assert_eq!(kustomization["apiVersion"], "kustomize.config.k8s.io/v1beta1");
    assert_eq!(kustomization["kind"], "Kustomization");
    let resources: BTreeSet<String> = kustomization["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect();
    let mut expected = kubernetes_manifests();
    for optional in OPTIONAL_MANIFESTS {
        assert!(expected.remove(optional), "{optional} is gone");
        let comment = format!("# - {optional}");
        assert!(
            read("deploy/kubernetes/kustomization.yaml").contains(&comment),
            "kustomization.yaml says how to add it: {comment}"
        );
    }
    assert_eq!(
        resources, expected,
        "kubectl apply -k must apply every manifest of the directory but the optional ones"
    );
    for field in ["commonLabels", "labels"] {
        assert!(
            kustomization[field].is_null(),
            "{field} would label (and, for commonLabels, select) every resource"
        );
    }

    let transformers = kustomization["transformers"].as_array().expect("transformers");
    let labellers: Vec<Value> = transformers
        .iter()
        .map(|t| {
            serde_norway::from_str::<Value>(t.as_str().expect("an inline transformer")).unwrap()
        })
        .filter(|t| t["kind"] == "LabelTransformer")
        .collect();
    assert_eq!(labellers.len(), 1, "one LabelTransformer: {labellers:?}");
    let labeller = &labellers[0];
    assert_eq!(labeller["apiVersion"], "builtin");
    let labels = labeller["labels"].as_object().unwrap();
    assert!(labels.contains_key("release"), "kube-prometheus-stack selects by release: {labels:?}");
    let kinds: BTreeSet<&str> = labeller["fieldSpecs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|spec| {
            assert_eq!(spec["path"], "metadata/labels", "{spec}");
            assert_eq!(spec["create"], true, "{spec}");
            spec["kind"]
                .as_str()
                .expect("a kind: without one every resource, selectors included, gets the label")
        })
        .collect();
    assert_eq!(kinds, BTreeSet::from(["ServiceMonitor", "PrometheusRule"]));

    // Nowhere else: the manifests carry none of these labels themselves.
    let mut selected = BTreeSet::new();
    for manifest in kubernetes_manifests() {
        let document = yaml(&format!("deploy/kubernetes/{manifest}"));
        for key in labels.keys() {
            assert!(
                document["metadata"]["labels"][key].is_null(),
                "{manifest} sets {key} itself: set it in kustomization.yaml only"
            );
        }
        selected.insert(document["kind"].as_str().unwrap().to_owned());
    }
    assert!(
        selected.contains("ServiceMonitor") && selected.contains("PrometheusRule"),
        "{selected:?}"
    );
}

/// Resident memory measured with the release binary and two workers (docs/deployment.md,
/// Kubernetes): 60,000 distinct series scraped by wrk, and the worst peak, re-polling them every
/// second while 64 connections scrape.
const MEASURED_UNDER_LOAD_MIB: f64 = 34.0;
const MEASURED_WORST_PEAK_MIB: f64 = 125.0;
const HEADROOM: f64 = 1.25;

/// MiB in a Kubernetes quantity such as `64Mi`, `1Gi`, `200M` or `134217728`.
fn mebibytes(quantity: &str) -> f64 {
    let split = quantity.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(quantity.len());
    let (number, suffix) = quantity.split_at(split);
    let number: f64 = number.parse().unwrap_or_else(|_| panic!("not a quantity: {quantity:?}"));
    let bytes = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        other => panic!("unexpected suffix {other:?} in {quantity:?}"),
    };
    number * bytes / (1024.0 * 1024.0)
}

/// The secret volume's defaultMode as Kubernetes reads it: YAML 1.1, where a leading 0 is octal.
fn secret_default_mode(manifest: &str) -> u32 {
    let modes: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.trim().strip_prefix("defaultMode:"))
        .map(str::trim)
        .collect();
    assert_eq!(modes.len(), 1, "one defaultMode: {modes:?}");
    let text = modes[0];
    let parsed = match text
        .strip_prefix("0o")
        .or_else(|| text.strip_prefix('0').filter(|rest| !rest.is_empty()))
    {
        Some(octal) => u32::from_str_radix(octal, 8),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|e| panic!("defaultMode {text:?}: {e}"))
}

/// The exporter's flags as the pod's container gives them (the defaults for the others).
fn container_flags(container: &Value) -> wolkvox_exporter::config::Flags {
    use clap::Parser;
    let args = container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned());
    wolkvox_exporter::config::Flags::try_parse_from(
        std::iter::once("wolkvox_exporter".to_owned()).chain(args),
    )
    .unwrap_or_else(|e| panic!("the container's arguments: {e}"))
}

#[test]
fn the_stateful_set_is_one_hardened_replica_with_probes_and_a_secret_token() {
    let workload = yaml("deploy/kubernetes/statefulset.yaml");
    assert_eq!(
        workload["kind"], "StatefulSet",
        "a Deployment has no volumeClaimTemplates: its pods' state dies with each pod"
    );
    let spec = &workload["spec"];
    assert_eq!(spec["replicas"], 1, "one token, one poller");
    // A StatefulSet's rolling update ends the old pod before it starts the new one; Parallel would
    // not wait, and OnDelete would never apply a change.
    assert_ne!(spec["podManagementPolicy"], "Parallel", "two pollers at once");
    assert_ne!(
        spec["updateStrategy"]["type"], "OnDelete",
        "changes would wait for someone to delete the pod"
    );
    let service = yaml("deploy/kubernetes/service.yaml");
    assert_eq!(spec["serviceName"], service["metadata"]["name"], "a StatefulSet names its Service");
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let memory = |kind: &str| {
        mebibytes(
            container["resources"][kind]["memory"]
                .as_str()
                .unwrap_or_else(|| panic!("memory {kind}")),
        )
    };
    assert!(
        memory("requests") >= MEASURED_UNDER_LOAD_MIB,
        "the memory request, {} MiB, is under the {MEASURED_UNDER_LOAD_MIB} MiB measured under load",
        memory("requests")
    );
    assert!(
        memory("limits") >= MEASURED_WORST_PEAK_MIB * HEADROOM,
        "the memory limit, {} MiB, leaves less than {HEADROOM}x the worst peak measured, {MEASURED_WORST_PEAK_MIB} MiB",
        memory("limits")
    );
    // The measurements ran two async workers; more multiply the peak.
    let arg = |name: &str| {
        container["args"]
            .as_array()
            .unwrap()
            .iter()
            .find_map(|a| a.as_str().unwrap().strip_prefix(name).map(str::to_owned))
    };
    let workers: u32 = arg("--runtime.worker-threads=").map_or(2, |w| w.parse().unwrap());
    assert!(workers <= 2, "{workers} worker threads: the memory figures were measured with 2");

    // The Secret's files belong to root: only fsGroup (the image's uid) and a group-readable mode
    // let uid 65532 read the token.
    let image_user =
        read("Dockerfile").lines().rev().find_map(|l| l.strip_prefix("USER ")).unwrap().to_owned();
    let uid: u64 = image_user.split(':').next().unwrap().parse().unwrap();
    assert_eq!(pod["securityContext"]["runAsUser"], uid);
    assert_eq!(
        pod["securityContext"]["fsGroup"], uid,
        "without fsGroup the token file is root's and unreadable"
    );
    let mode = secret_default_mode(&read("deploy/kubernetes/statefulset.yaml"));
    assert!(mode & 0o040 != 0, "defaultMode {mode:o}: the fsGroup cannot read the token");
    assert_eq!(mode & 0o227, 0, "defaultMode {mode:o}: writable, or readable by every user");

    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert_eq!(container["ports"][0]["containerPort"].to_string(), default_port());
    assert!(
        container["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a.as_str().unwrap().starts_with("--wolkvox.token-file="))
    );
    assert!(pod["volumes"][0]["secret"]["secretName"].is_string(), "the token comes from a Secret");

    // SIGKILL comes after the grace period: it must leave room for a call to end.
    let flags = container_flags(container);
    let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    assert!(
        grace > flags.timeout.as_secs(),
        "terminationGracePeriodSeconds {grace} is not longer than --wolkvox.timeout ({:?}): SIGKILL may cut a call",
        flags.timeout
    );
}

/// The token is read again before each poll, and the kubelet updates a Secret's files in place
/// only in a volume mounted whole: with subPath a rotated token would wait for a new pod.
#[test]
fn the_token_secret_is_mounted_whole_so_a_rotated_token_reaches_the_pod() {
    let workload = yaml("deploy/kubernetes/statefulset.yaml");
    let pod = &workload["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let token = container_flags(container).token_file.expect("--wolkvox.token-file");
    let token = token.to_str().unwrap();
    let mount =
        mount_holding(container, token).unwrap_or_else(|| panic!("nothing is mounted at {token}"));
    assert!(
        mount["subPath"].is_null() && mount["subPathExpr"].is_null(),
        "{mount}: a subPath mount never sees a new token"
    );
    let volume =
        pod["volumes"].as_array().unwrap().iter().find(|v| v["name"] == mount["name"]).unwrap();
    assert!(volume["secret"].is_object(), "{token} lies in {volume}, not the Secret");
}

/// The state directory is a volume the pod's successor gets back (a claim of the StatefulSet; the
/// root filesystem is read-only), mounted where `--storage.path` points, in a directory of its own
/// below the volume's root, and writable by the image's user.
#[test]
fn the_stateful_set_keeps_its_state_in_a_claimed_writable_volume() {
    let workload = yaml("deploy/kubernetes/statefulset.yaml");
    let pod = &workload["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    let args: Vec<&str> =
        container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let path = args
        .iter()
        .find_map(|a| a.strip_prefix("--storage.path="))
        .expect("no --storage.path=: the default, data/ in the working directory, depends on the image and any workingDir");
    assert!(path.starts_with('/'), "--storage.path={path} is not absolute");
    let mount = mount_holding(container, path)
        .unwrap_or_else(|| panic!("nothing is mounted at {path}: on the read-only root filesystem the exporter stops (exit 2)"));
    assert_ne!(mount["readOnly"], true, "{mount} is read-only");
    assert_ne!(
        directory(path),
        directory(mount["mountPath"].as_str().unwrap()),
        "--storage.path is the volume's root, which may be writable by every user (0777, 2777): the exporter refuses it"
    );
    let name = mount["name"].as_str().unwrap();
    assert!(
        pod["volumes"].as_array().unwrap().iter().all(|v| v["name"] != name),
        "the pod's own volume {name} (an emptyDir?) dies with the pod: a rollout or a drain would call early and forget the day's count"
    );
    let claim = workload["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["metadata"]["name"] == name)
        .unwrap_or_else(|| {
            panic!("no volumeClaimTemplate {name}: the state would not outlive the pod")
        });
    assert_eq!(
        claim["spec"]["accessModes"],
        serde_json::json!(["ReadWriteOnce"]),
        "one pod uses it"
    );
    let size =
        claim["spec"]["resources"]["requests"]["storage"].as_str().expect("a storage request");
    assert!(mebibytes(size) >= 1.0, "{size} is too small for the state");
    // The kubelet gives the volume the pod's fsGroup (most persistent volumes): the image's user,
    // which the container runs as, may write it.
    let image_user =
        read("Dockerfile").lines().rev().find_map(|l| l.strip_prefix("USER ")).unwrap().to_owned();
    let uid: u64 = image_user.split(':').next().unwrap().parse().unwrap();
    let security = &pod["securityContext"];
    assert_eq!(
        security["fsGroup"], uid,
        "without fsGroup {uid} a persistent volume is root's and unwritable"
    );
    let runs_as =
        container["securityContext"]["runAsUser"].as_u64().or(security["runAsUser"].as_u64());
    assert_eq!(runs_as, Some(uid), "the container runs as another user than the volume's group");
}

#[test]
fn service_monitor_selects_the_service_and_the_service_keeps_unready_pods() {
    let service = yaml("deploy/kubernetes/service.yaml");
    let monitor = yaml("deploy/kubernetes/servicemonitor.yaml");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["kind"], "ServiceMonitor");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "the ServiceMonitor selects the Service by {key}"
        );
    }
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], service["spec"]["ports"][0]["name"]);
    assert_eq!(
        service_monitor_job(&monitor, &service),
        alerts_job(),
        "the job label the alerts expect"
    );
    assert_eq!(service["spec"]["publishNotReadyAddresses"], true);
}

#[test]
fn the_prometheus_rule_holds_exactly_the_bundled_rules_and_passes_promtool() {
    let rule = yaml("deploy/kubernetes/prometheusrule.yaml");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(
        rule["spec"],
        yaml("deploy/prometheus/rules/wolkvox.rules.yml"),
        "drifted: run scripts/sync-kubernetes.sh"
    );

    let Some(promtool) = tool("promtool") else { return };
    let dir = temp_dir("prometheusrule");
    let file = dir.join("rules.yml");
    std::fs::write(&file, serde_norway::to_string(&rule["spec"]).unwrap()).unwrap();
    let (ok, output) = run_tool(&promtool, &["check", "rules", file.to_str().unwrap()], None);
    assert!(ok, "{output}");
}

#[test]
fn the_dashboard_config_map_carries_every_dashboard_unchanged() {
    let config_map = yaml("deploy/kubernetes/dashboard-configmap.yaml");
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    let data = config_map["data"].as_object().unwrap();
    let dashboards: Vec<_> =
        std::fs::read_dir(repo_path("dashboards")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(data.len(), dashboards.len(), "drifted: run scripts/sync-kubernetes.sh");
    for path in dashboards {
        let name = path.file_name().unwrap().to_str().unwrap();
        let embedded = data[name]
            .as_str()
            .unwrap_or_else(|| panic!("{name} missing: run scripts/sync-kubernetes.sh"));
        let file = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            embedded.trim_end(),
            file.trim_end(),
            "{name} drifted: run scripts/sync-kubernetes.sh"
        );
    }
}

/// Name and value pairs, in order.
type Pairs = Vec<(String, String)>;

/// The environment systemd gives the service: `Environment=` of the unit and its drop-ins, then the
/// `EnvironmentFile=` (which wins), minus `UnsetEnvironment=`, with `%d` the credentials
/// directory and `%S` the root of state directories (`/var/lib`); and the credentials, ID to
/// source path.
fn systemd_service_environment(
    units: &[&str],
    credentials: &Path,
    state_root: &Path,
) -> (Pairs, Pairs) {
    let mut environment: Pairs = Vec::new();
    let mut files = Vec::new();
    let mut unset = Vec::new();
    let mut loaded = Vec::new();
    let set = |environment: &mut Pairs, key: &str, value: &str| {
        environment.retain(|(k, _)| k != key);
        let value = value
            .replace("%d", credentials.to_str().unwrap())
            .replace("%S", state_root.to_str().unwrap());
        environment.push((key.to_owned(), value));
    };
    for unit in units {
        for line in unit.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
            let Some((key, value)) = line.split_once('=') else { continue };
            match key {
                "Environment" => {
                    let (name, value) = value.split_once('=').unwrap();
                    set(&mut environment, name, value);
                }
                "EnvironmentFile" => files.push(value.to_owned()),
                "UnsetEnvironment" => unset.extend(value.split_whitespace().map(str::to_owned)),
                "LoadCredential" => {
                    let (id, source) = value.split_once(':').unwrap();
                    loaded.push((id.to_owned(), source.to_owned()));
                }
                _ => {}
            }
        }
    }
    for file in files {
        assert_eq!(
            file, "/etc/default/wolkvox_exporter",
            "the environment file docs/deployment.md installs"
        );
        for line in read("deploy/systemd/wolkvox_exporter.env")
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        {
            let (name, value) = line.split_once('=').unwrap();
            set(&mut environment, name, value);
        }
    }
    environment.retain(|(k, _)| !unset.contains(k));
    (environment, loaded)
}

/// The settings of a unit and its drop-ins, in order, comments left out.
fn unit_settings<'a>(units: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    units
        .iter()
        .flat_map(|unit| unit.lines())
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| l.split_once('='))
        .collect()
}

/// The directory `StateDirectory=` gives the service, below `state_root` (`%S`, `/var/lib`).
fn systemd_state_directory(units: &[&str], state_root: &Path) -> Option<PathBuf> {
    let names: Vec<&str> = unit_settings(units)
        .into_iter()
        .filter(|(k, _)| *k == "StateDirectory")
        .flat_map(|(_, v)| v.split_whitespace())
        .collect();
    assert!(names.len() <= 1, "one state directory: {names:?}");
    names.first().map(|name| state_root.join(name))
}

/// The arguments of the last `ExecStart=` after the program, with `%S` and `$STATE_DIRECTORY`
/// expanded as systemd expands them.
fn systemd_exec_args(units: &[&str], state_root: &Path) -> Vec<String> {
    let settings = unit_settings(units);
    let exec_start = settings
        .iter()
        .rev()
        .find(|(k, _)| *k == "ExecStart")
        .map(|(_, v)| *v)
        .expect("an ExecStart=");
    let state = systemd_state_directory(units, state_root)
        .map(|dir| dir.to_str().unwrap().to_owned())
        .unwrap_or_default();
    exec_start
        .split_whitespace()
        .skip(1)
        .map(|word| {
            word.replace("${STATE_DIRECTORY}", &state)
                .replace("$STATE_DIRECTORY", &state)
                .replace("%S", state_root.to_str().unwrap())
        })
        .collect()
}

/// The `--storage.path` the service runs with: on its command line, else from its environment.
fn systemd_storage_path(args: &[String], environment: &Pairs) -> Option<String> {
    let from_args =
        args.iter().enumerate().find_map(|(i, arg)| match arg.strip_prefix("--storage.path") {
            Some(rest) if rest.starts_with('=') => Some(rest[1..].to_owned()),
            Some("") => args.get(i + 1).cloned(),
            _ => None,
        });
    from_args.or_else(|| {
        environment.iter().find(|(k, _)| k == "WOLKVOX_STORAGE_PATH").map(|(_, v)| v.clone())
    })
}

/// Runs `--config.check` with exactly the arguments, environment and credentials systemd would
/// give the unit and `drop_ins`; returns its output.
fn config_check_as_the_unit(drop_ins: &[&str], config: Option<&str>) -> String {
    let unit = read("deploy/systemd/wolkvox_exporter.service");
    let credentials = temp_dir("credentials");
    let state_root = temp_dir("state-root");
    let units: Vec<&str> = std::iter::once(unit.as_str()).chain(drop_ins.iter().copied()).collect();
    let (environment, loaded) = systemd_service_environment(&units, &credentials, &state_root);
    let args = systemd_exec_args(&units, &state_root);
    // What the dynamic user may read: its credentials, never the root-only /etc/wolkvox_exporter/.
    for (name, value) in &environment {
        assert!(
            !value.starts_with("/etc/wolkvox_exporter"),
            "{name}={value}: the dynamic user cannot read that directory (0700)"
        );
    }
    for (id, source) in &loaded {
        let content = match (id.as_str(), config) {
            ("wolkvox-token", _) => "a-token-for-the-test".to_owned(),
            (_, Some(config)) => config.replace(
                "/run/credentials/wolkvox_exporter.service",
                credentials.to_str().unwrap(),
            ),
            _ => panic!("unexpected credential {id} from {source}"),
        };
        std::fs::write(credentials.join(id), content).unwrap();
    }
    let output = process::binary()
        .args(&args)
        .arg("--config.check")
        .env_clear()
        .envs(environment.clone())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "--config.check with the unit's arguments {args:?} and environment {environment:?}: {text}"
    );
    text
}

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let unit = read("deploy/systemd/wolkvox_exporter.service");
    for key in [
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "LoadCredential=wolkvox-token:",
        "Environment=WOLKVOX_TOKEN_FILE=%d/wolkvox-token",
        "EnvironmentFile=/etc/default/wolkvox_exporter",
        "CapabilityBoundingSet=\n",
        // A configuration error exits 2: restarting cannot fix it.
        "RestartPreventExitStatus=2\n",
    ] {
        assert!(unit.contains(key), "the unit lacks {key:?}");
    }
    let env = read("deploy/systemd/wolkvox_exporter.env");
    assert!(
        !env.contains("WOLKVOX_TOKEN="),
        "the token belongs in the credential, not the environment file"
    );

    let Some(analyze) = tool("systemd-analyze") else { return };
    // Verify copies pointing at the built binary and the bundled environment file, alone and
    // with the config-file drop-in.
    let dir = temp_dir("systemd");
    let copy = dir.join("wolkvox_exporter.service");
    let unit = unit.replace("/usr/local/bin/wolkvox_exporter", process::BIN).replace(
        "/etc/default/wolkvox_exporter",
        repo_path("deploy/systemd/wolkvox_exporter.env").to_str().unwrap(),
    );
    std::fs::write(&copy, unit).unwrap();
    let (ok, output) = run_tool(&analyze, &["verify", copy.to_str().unwrap()], None);
    assert!(ok && output.trim().is_empty(), "systemd-analyze verify: {output}");
    let (_, security) =
        run_tool(&analyze, &["security", "--offline=true", copy.to_str().unwrap()], None);
    let exposure: f64 = security
        .lines()
        .find_map(|l| {
            l.split_once("Overall exposure level for wolkvox_exporter.service: ")?
                .1
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .expect("an exposure level");
    assert!(
        exposure <= 2.0,
        "systemd-analyze security rates the unit {exposure} (at most 2.0 expected)"
    );

    let drop_ins = dir.join("wolkvox_exporter.service.d");
    std::fs::create_dir(&drop_ins).unwrap();
    std::fs::write(
        drop_ins.join("config-file.conf"),
        read("deploy/systemd/wolkvox_exporter-config-file.conf"),
    )
    .unwrap();
    let (ok, output) = run_tool(&analyze, &["verify", copy.to_str().unwrap()], None);
    assert!(ok && output.trim().is_empty(), "systemd-analyze verify with the drop-in: {output}");
}

/// The unit's own environment and credentials make a valid configuration, for one server and,
/// with the drop-in, for a config file: nothing the service reads lies in the root-only directory.
#[test]
fn the_systemd_unit_and_its_config_file_drop_in_pass_the_config_check() {
    let single = config_check_as_the_unit(&[], None);
    assert!(single.contains("server=0042"), "{single}");

    let drop_in = read("deploy/systemd/wolkvox_exporter-config-file.conf");
    assert!(
        drop_in.contains("Environment=WOLKVOX_CONFIG_FILE=%d/"),
        "the config file is read as a credential"
    );
    let config = "targets:\n  - server: \"0042\"\n    token_file: /run/credentials/wolkvox_exporter.service/wolkvox-token\n  - server: \"0043\"\n    token_file: /run/credentials/wolkvox_exporter.service/wolkvox-token\n";
    assert!(
        drop_in.contains("token_file: /run/credentials/wolkvox_exporter.service/wolkvox-token"),
        "the drop-in shows how to name the token"
    );
    let several = config_check_as_the_unit(&[&drop_in], Some(config));
    assert!(several.contains("server=0042") && several.contains("server=0043"), "{several}");
}

/// The state survives restarts only in the directory systemd keeps for the service: the only
/// place `ProtectSystem=strict` lets it write, and private to it.
#[test]
fn the_systemd_unit_keeps_its_state_in_its_state_directory() {
    let unit = read("deploy/systemd/wolkvox_exporter.service");
    let drop_in = read("deploy/systemd/wolkvox_exporter-config-file.conf");
    let root = Path::new("/var/lib");
    for units in [vec![unit.as_str()], vec![unit.as_str(), drop_in.as_str()]] {
        let state = systemd_state_directory(&units, root)
            .expect("no StateDirectory=: under ProtectSystem=strict the exporter has nowhere to write, and stops (exit 2)");
        let (environment, _) = systemd_service_environment(
            &units,
            Path::new("/run/credentials/wolkvox_exporter.service"),
            root,
        );
        let storage = systemd_storage_path(&systemd_exec_args(&units, root), &environment)
            .expect("no --storage.path (or WOLKVOX_STORAGE_PATH): the default, data/ in the working directory /, is read-only");
        assert_eq!(
            Path::new(&storage),
            state,
            "--storage.path is {storage:?}, not the state directory {}: it would not survive, or not be writable",
            state.display()
        );
        let modes: Vec<&str> = unit_settings(&units)
            .into_iter()
            .filter(|(k, _)| *k == "StateDirectoryMode")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(
            modes.last().copied(),
            Some("0700"),
            "StateDirectoryMode=0700: systemd's default, 0755, lets every user read the state"
        );
    }
}

/// Hosts a deployment file may name: this machine, the compose services, the vendor's API, and
/// the names reserved for examples (RFC 2606, RFC 6761). Anything else would be invented.
fn known_host(host: &str, compose_services: &BTreeSet<String>) -> bool {
    let host = host.split(':').next().unwrap().to_ascii_lowercase();
    ["localhost", "127.0.0.1", "[::1]"].contains(&host.as_str())
        || compose_services.contains(&host)
        || host == "wolkvox.com"
        || host.ends_with(".wolkvox.com")
        || [".example", ".invalid", ".test", ".localhost", ".example.internal"]
            .iter()
            .any(|tld| host.ends_with(tld))
        || ["example.com", "example.org", "example.net"]
            .iter()
            .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

#[test]
fn deployment_files_name_no_invented_host_or_repository() {
    fn files(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() { files(&path, found) } else { found.push(path) }
        }
    }
    let mut all = vec![repo_path("Dockerfile")];
    files(&repo_path("deploy"), &mut all);
    let compose = yaml("deploy/docker-compose.yml");
    let services: BTreeSet<String> =
        compose["services"].as_object().unwrap().keys().cloned().collect();
    let mut invented = Vec::new();
    for path in &all {
        let text = std::fs::read_to_string(path).unwrap();
        let name = path.strip_prefix(repo_path("")).unwrap().display().to_string();
        if text.to_ascii_lowercase().contains("github.com/wolkvox-exporter") {
            invented.push(format!("{name}: github.com/wolkvox-exporter"));
        }
        for scheme in ["http://", "https://"] {
            for (at, _) in text.match_indices(scheme) {
                let rest = &text[at + scheme.len()..];
                let host = &rest[..rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || ".-:[]{}".contains(c)))
                    .unwrap_or(rest.len())];
                // A template such as wv{server}.wolkvox.com: judge the fixed part.
                let host = host.rsplit('}').next().unwrap().trim_start_matches('.');
                if !known_host(host, &services) {
                    invented.push(format!("{name}: {scheme}{host}"));
                }
            }
        }
    }
    assert!(invented.is_empty(), "hosts or repositories the project does not own: {invented:#?}");
}

/// Renders `kustomization` (the text of a kustomization.yaml, whose resources may name the bundle
/// as `BUNDLE`) with `kubectl kustomize`, as a cluster's overlay would; returns its documents.
/// `copies`, files of the bundle, are copied beside it, as one adapts and adds the optional ones.
fn kustomize_overlay(kubectl: &Path, kustomization: &str, copies: &[&str]) -> Vec<Value> {
    let dir = temp_dir("overlay");
    for file in copies {
        std::fs::copy(repo_path(&format!("deploy/kubernetes/{file}")), dir.join(file)).unwrap();
    }
    let bundle = repo_path("deploy/kubernetes");
    // Kustomize takes a base only by a relative path.
    let up = "../"
        .repeat(dir.components().filter(|c| matches!(c, std::path::Component::Normal(_))).count());
    let relative = format!("{up}{}", bundle.to_str().unwrap().trim_start_matches('/'));
    std::fs::write(dir.join("kustomization.yaml"), kustomization.replace("BUNDLE", &relative))
        .unwrap();
    let (ok, output) = run_tool(kubectl, &["kustomize", dir.to_str().unwrap()], None);
    assert!(ok, "kubectl kustomize of the overlay {kustomization:?}: {output}");
    serde_norway::Deserializer::from_str(&output)
        .map(|document| Value::deserialize(document).unwrap())
        .collect()
}

/// The one document of `kind` among `documents`.
fn only<'a>(documents: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = documents.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} in the rendered bundle, not {}", found.len());
    found[0]
}

/// The `job` label the prometheus-operator gives the targets of a ServiceMonitor's first endpoint
/// that selects `service`: the Service's name (or its `jobLabel` label's value), then the endpoint's
/// `relabelings` in order. Only `replace` with a constant or a whole source value is understood.
fn service_monitor_job(monitor: &Value, service: &Value) -> String {
    let mut labels: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();
    let name = service["metadata"]["name"].as_str().unwrap().to_owned();
    labels.insert("__meta_kubernetes_service_name".into(), name.clone());
    labels.insert(
        "__meta_kubernetes_namespace".into(),
        service["metadata"]["namespace"].as_str().unwrap_or("default").into(),
    );
    let job = match monitor["spec"]["jobLabel"].as_str() {
        Some(label) => service["metadata"]["labels"][label].as_str().map_or(name, str::to_owned),
        None => name,
    };
    labels.insert("job".into(), job);
    for rule in monitor["spec"]["endpoints"][0]["relabelings"].as_array().into_iter().flatten() {
        let action = rule["action"].as_str().unwrap_or("replace").to_ascii_lowercase();
        assert_eq!(action, "replace", "this check understands only replace: {rule}");
        let regex = rule["regex"].as_str().unwrap_or("(.*)");
        assert_eq!(regex, "(.*)", "this check understands only the default regex: {rule}");
        let separator = rule["separator"].as_str().unwrap_or(";");
        let source: Vec<&str> = rule["sourceLabels"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| labels.get(l.as_str().unwrap()).map_or("", String::as_str))
            .collect();
        let value = rule["replacement"]
            .as_str()
            .unwrap_or("$1")
            .replace("${1}", &source.join(separator))
            .replace("$1", &source.join(separator));
        let target = rule["targetLabel"].as_str().expect("a targetLabel");
        labels.insert(target.to_owned(), value);
    }
    labels["job"].clone()
}

/// The job every alert rule selects, in `job="..."` matchers.
fn alerts_job() -> String {
    let rules = read("deploy/prometheus/rules/wolkvox.rules.yml");
    let jobs: BTreeSet<&str> = rules
        .match_indices("job=\"")
        .map(|(at, m)| {
            let rest = &rules[at + m.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect();
    assert_eq!(jobs.len(), 1, "one job in the alerts: {jobs:?}");
    jobs.into_iter().next().unwrap().to_owned()
}

/// A cluster's overlay renames and moves the bundle (kube-prometheus-stack names the job after the
/// Service, so a prefix would rename it): the alerts still find the job, the Service still finds
/// the pod, and the state still lies in the pod's volume.
#[test]
fn an_overlay_with_a_name_prefix_and_a_namespace_keeps_the_job_the_pods_and_the_state() {
    let Some(kubectl) = tool("kubectl") else { return };
    let documents = kustomize_overlay(
        &kubectl,
        "resources:\n  - BUNDLE\n  - networkpolicy.yaml\nnamePrefix: prod-\nnamespace: billing\n",
        &["networkpolicy.yaml"],
    );
    for document in &documents {
        if document["kind"] != "Namespace" {
            assert_eq!(
                document["metadata"]["namespace"], "billing",
                "{} is not moved",
                document["metadata"]["name"]
            );
        }
    }
    let service = only(&documents, "Service");
    assert_eq!(service["metadata"]["name"], "prod-wolkvox", "the overlay renames the Service");
    let monitor = only(&documents, "ServiceMonitor");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &service["metadata"]["labels"][key], value,
            "the ServiceMonitor no longer selects the Service by {key}"
        );
    }
    assert!(
        monitor["spec"]["namespaceSelector"].is_null(),
        "the ServiceMonitor looks in its own namespace, the Service's"
    );
    let job = service_monitor_job(monitor, service);
    assert_eq!(
        job,
        alerts_job(),
        "the ServiceMonitor yields job={job:?}: the alerts' job=\"{}\" matchers miss it",
        alerts_job()
    );

    let workload = documents
        .iter()
        .find(|d| d["kind"] == "StatefulSet" || d["kind"] == "Deployment")
        .expect("a workload");
    let pod_labels = &workload["spec"]["template"]["metadata"]["labels"];
    for (key, value) in service["spec"]["selector"].as_object().unwrap() {
        assert_eq!(&pod_labels[key], value, "the Service no longer selects the pods by {key}");
    }
    for (key, value) in workload["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&pod_labels[key], value, "the workload's selector misses its own pods by {key}");
    }
    // The Secret is made by hand (kubectl create secret generic wolkvox-token), outside the bundle:
    // a prefix must not rename the reference to it.
    let secrets: Vec<&Value> = workload["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["secret"]["secretName"].is_string())
        .collect();
    assert_eq!(secrets.len(), 1);
    assert_eq!(
        secrets[0]["secret"]["secretName"], "wolkvox-token",
        "the kubectl create secret of docs/deployment.md makes wolkvox-token"
    );
    let policy = only(&documents, "NetworkPolicy");
    for (key, value) in policy["spec"]["podSelector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            &pod_labels[key], value,
            "the NetworkPolicy no longer selects the pods by {key}"
        );
    }
    if workload["kind"] == "StatefulSet" {
        assert_eq!(
            workload["spec"]["serviceName"], service["metadata"]["name"],
            "the StatefulSet's serviceName follows the rename"
        );
    }
    let pod = &workload["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let path = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|a| a.as_str().unwrap().strip_prefix("--storage.path="))
        .expect("--storage.path");
    let mount = mount_holding(container, path)
        .unwrap_or_else(|| panic!("nothing is mounted at {path} in the rendered bundle"));
    let name = &mount["name"];
    let claimed = workload["spec"]["volumeClaimTemplates"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| &c["metadata"]["name"] == name);
    let volume = pod["volumes"].as_array().into_iter().flatten().any(|v| &v["name"] == name);
    assert!(
        claimed || volume,
        "the state mount {name} names no volume nor claim template in the rendered bundle"
    );
}

/// For default-deny clusters: the policy selects the exporter's pods and lets in the metrics port
/// and out HTTPS (Wolkvox) and DNS, and nothing else.
#[test]
fn the_network_policy_lets_prometheus_in_and_wolkvox_and_dns_out() {
    let policy = yaml("deploy/kubernetes/networkpolicy.yaml");
    assert_eq!(policy["kind"], "NetworkPolicy");
    let workload = yaml("deploy/kubernetes/statefulset.yaml");
    let pod_labels = &workload["spec"]["template"]["metadata"]["labels"];
    let selector = policy["spec"]["podSelector"]["matchLabels"]
        .as_object()
        .expect("a podSelector with labels: {} would select every pod");
    for (key, value) in selector {
        assert_eq!(&pod_labels[key], value, "the policy misses the exporter's pods by {key}");
    }
    assert_eq!(policy["spec"]["policyTypes"], serde_json::json!(["Ingress", "Egress"]));

    let container = &workload["spec"]["template"]["spec"]["containers"][0];
    let ingress = policy["spec"]["ingress"].as_array().expect("ingress rules");
    assert_eq!(ingress.len(), 1, "{ingress:?}");
    let from = ingress[0]["from"].as_array().expect("from Prometheus only, not from everywhere");
    assert!(
        from.iter()
            .all(|peer| peer["namespaceSelector"].is_object() && peer["podSelector"].is_object()),
        "{from:?}"
    );
    let ports: Vec<&Value> = ingress[0]["ports"].as_array().unwrap().iter().collect();
    assert_eq!(ports.len(), 1, "{ports:?}");
    let port = &ports[0]["port"];
    let metrics = container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == *port || p["containerPort"] == *port);
    assert!(
        metrics.is_some_and(|p| p["containerPort"].as_u64().map(|n| n.to_string()).as_deref()
            == Some(default_port())),
        "ingress port {port} is not the metrics port"
    );

    let mut allowed = BTreeSet::new();
    for rule in policy["spec"]["egress"].as_array().expect("egress rules") {
        assert!(
            rule["to"].is_null(),
            "{rule}: Wolkvox's addresses are not fixed, and DNS may be node-local"
        );
        for port in rule["ports"].as_array().unwrap() {
            allowed.insert(format!(
                "{}/{}",
                port["protocol"].as_str().unwrap_or("TCP"),
                port["port"]
            ));
        }
    }
    assert_eq!(
        allowed,
        BTreeSet::from(["TCP/443".to_owned(), "UDP/53".to_owned(), "TCP/53".to_owned()])
    );
}

/// Grafana never starts on admin/admin: Compose refuses to run without GRAFANA_ADMIN_PASSWORD
/// and hands it to Grafana; Alertmanager keeps its silences in a named volume.
#[test]
fn compose_requires_a_grafana_password_and_keeps_alertmanager_silences() {
    let Some(tool) = tool("docker-compose") else { return };
    let (ok, stdout, stderr) = compose(&tool, &[], &["config", "--quiet"]);
    assert!(
        !ok,
        "compose starts without GRAFANA_ADMIN_PASSWORD, so Grafana would take admin/admin: {stdout}{stderr}"
    );
    assert!(stderr.contains("GRAFANA_ADMIN_PASSWORD"), "the error names the variable: {stderr}");
    let (ok, _, stderr) = compose(&tool, &[("GRAFANA_ADMIN_PASSWORD", "")], &["config", "--quiet"]);
    assert!(!ok, "an empty password is accepted: {stderr}");

    let config = compose_config(&[]);
    let grafana = &config["services"]["grafana"]["environment"];
    assert_eq!(grafana["GF_SECURITY_ADMIN_PASSWORD"], TEST_GRAFANA_PASSWORD, "{grafana}");
    assert!(
        grafana["GF_SECURITY_ADMIN_USER"].as_str().is_none_or(|user| !user.is_empty()),
        "{grafana}"
    );

    let alertmanager = &config["services"]["alertmanager"];
    let args: Vec<&str> = alertmanager["command"]
        .as_array()
        .expect("Alertmanager's arguments are set")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let storage =
        args.iter().find_map(|a| a.strip_prefix("--storage.path=")).expect("--storage.path");
    assert!(
        args.contains(&"--config.file=/etc/alertmanager/alertmanager.yml"),
        "the bundled configuration: {args:?}"
    );
    let volume = alertmanager["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| directory(v["target"].as_str().unwrap()) == directory(storage))
        .unwrap_or_else(|| {
            panic!("nothing is mounted at {storage}: silences die with the container")
        });
    assert_eq!(volume["type"], "volume", "a named volume at {storage}, not {volume}");
    let source = volume["source"].as_str().unwrap();
    assert!(
        config["volumes"][source].is_object(),
        "the volume {source} is declared at the top level"
    );
}

/// The text of the section `heading` (a `##` heading) of the Markdown file `relative`, up to the
/// next heading of that level or above.
fn doc_section(relative: &str, heading: &str) -> String {
    let text = read(relative);
    let start = text
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("no section \"## {heading}\" in {relative}"));
    let body = &text[start + heading.len() + 5..];
    let end = ["\n## ", "\n# "].iter().filter_map(|h| body.find(h)).min().unwrap_or(body.len());
    body[..end].to_owned()
}

/// The runbook (TokenRejected) promises that writing the token file is enough: where a copy of the
/// file, not the file, reaches the exporter (systemd's credential, a bind-mounted file), the unit,
/// the compose file and docs/deployment.md say exactly what to run.
#[test]
fn every_install_method_says_what_a_new_token_needs() {
    let section = doc_section("docs/deployment.md", "Writing a new token");
    let unit = read("deploy/systemd/wolkvox_exporter.service");
    if unit.lines().any(|l| l.starts_with("LoadCredential=wolkvox-token:")) {
        let restart = "systemctl restart wolkvox_exporter";
        assert!(
            unit.contains(&format!("#   {restart}")),
            "the unit copies the token at start only: its comments must say {restart}"
        );
        assert!(section.contains(restart), "docs/deployment.md must say {restart}");
        assert!(
            section.contains("systemctl reload` is not enough"),
            "reload does not load credentials again"
        );
    }
    let compose = yaml("deploy/docker-compose.yml");
    if compose["secrets"]["wolkvox_token"]["file"].is_string() {
        let restart = "docker compose -f deploy/docker-compose.yml restart wolkvox-exporter";
        assert!(
            read("deploy/docker-compose.yml").contains(restart),
            "the bind-mounted token needs {restart}: the compose file says so"
        );
        assert!(section.contains(restart), "docs/deployment.md must say {restart}");
    }
    assert!(section.contains("docker restart"), "docker run with a bind-mounted token file");
    assert!(section.contains("| Kubernetes | nothing"), "the Secret volume is updated in place");
    assert!(section.contains("kubectl apply -f -"), "how to update the Secret");
}

// The README and docs/: the links between them, and the README's first lines.

/// The Markdown files of the project's documentation: the README and every file of docs/.
fn markdown_docs() -> Vec<String> {
    let mut files = vec!["README.md".to_owned()];
    for entry in std::fs::read_dir(repo_path("docs")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            files.push(format!("docs/{name}"));
        }
    }
    files.sort();
    files
}

/// The targets of the inline links `[text](target)` of a Markdown text, outside code (fenced
/// blocks and inline code spans).
fn link_targets(markdown: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose_lines(markdown) {
        let line: String = line.split('`').step_by(2).collect();
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            let end = rest.find(')').unwrap_or_else(|| panic!("an unclosed link in {line:?}"));
            targets.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
    targets
}

/// `a/b/../c` as `a/c`, relative to the repository's root; None if it leaves the repository.
fn normalize(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

#[test]
fn every_relative_link_of_the_docs_reaches_a_file_and_a_heading() {
    let docs = markdown_docs();
    assert!(docs.len() >= 10, "the README and the docs: {docs:?}");
    let mut checked = 0;
    for doc in &docs {
        let text = read(doc);
        let dir = Path::new(doc).parent().unwrap().to_str().unwrap().to_owned();
        for target in link_targets(&text) {
            if target.starts_with("http://")
                || target.starts_with("https://")
                || target.starts_with("mailto:")
            {
                continue;
            }
            assert!(
                !target.contains(' ') && !target.is_empty(),
                "{doc}: a link target with a space, or empty: {target:?}"
            );
            let (file, anchor) =
                target.split_once('#').map_or((target.as_str(), None), |(f, a)| (f, Some(a)));
            let file = if file.is_empty() {
                doc.clone()
            } else {
                normalize(&format!("{dir}/{file}"))
                    .unwrap_or_else(|| panic!("{doc}: {target} leaves the repository"))
            };
            checked += 1;
            assert!(
                repo_path(&file).exists(),
                "{doc}: {target} names {file}, which does not exist"
            );
            if let Some(anchor) = anchor {
                assert!(
                    file.ends_with(".md"),
                    "{doc}: {target}: an anchor in a file that is not Markdown"
                );
                let anchors = github_anchors(&read(&file));
                assert!(
                    anchors.contains(anchor),
                    "{doc}: {target}: {file} has no heading #{anchor} (it has {anchors:?})"
                );
            }
        }
    }
    assert!(checked >= 40, "only {checked} relative links: is the link parser broken?");
    // The README links every file of docs/.
    let readme_links: BTreeSet<String> = link_targets(&read("README.md"))
        .into_iter()
        .filter_map(|t| normalize(t.split('#').next().unwrap()))
        .collect();
    for doc in docs.iter().filter(|d| d.starts_with("docs/")).map(String::as_str) {
        assert!(readme_links.contains(doc), "the README does not link {doc}");
    }
}

#[test]
fn the_link_checker_knows_the_anchors_and_links_it_checks() {
    let text = "# Title\n## TLS, basic auth: `--web.config.file`\n```\n# not a heading [x](nope.md)\n```\n## Title\n\
                See [a](b.md#c) and `[d](e.md)` and [f](#title-1).\n";
    let anchors = github_anchors(text);
    assert_eq!(
        anchors,
        BTreeSet::from(["title", "title-1", "tls-basic-auth---webconfigfile"].map(str::to_owned))
    );
    assert_eq!(link_targets(text), ["b.md#c", "#title-1"]);
    assert_eq!(normalize("docs/../README.md").as_deref(), Some("README.md"));
    assert_eq!(normalize("docs/../../x"), None);
}

/// The README opens with the two commands a newcomer needs, the demo and the tests, and the test
/// command is the one CI runs.
#[test]
fn the_readme_starts_with_the_demo_and_the_test_command_that_ci_runs() {
    let readme = read("README.md");
    let block = readme
        .strip_prefix("# wolkvox_exporter\n\n```sh\n")
        .expect("the README opens with a shell block under its title");
    let block = &block[..block.find("\n```").expect("the block ends")];
    let commands: Vec<&str> = block.lines().map(|l| l.split(" #").next().unwrap().trim()).collect();
    assert_eq!(commands.len(), 2, "two commands: {commands:?}");
    assert!(
        commands[0].starts_with("cargo run") && commands[0].ends_with(" --demo"),
        "first the demo: {}",
        commands[0]
    );
    let test = commands[1];
    assert!(test.starts_with("cargo test"), "then the tests: {test}");
    let ci = read(".ci/run");
    assert!(
        ci.lines().any(|l| l
            .trim_start()
            .strip_prefix(test)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))),
        ".ci/run does not run the README's test command {test:?}"
    );
}
