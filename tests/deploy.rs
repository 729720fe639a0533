//! The ways to install it, each validated with the tools that run here (there is no container
//! engine or cluster): hadolint, Compose's own config check, the Kubernetes schemas, promtool and
//! systemd-analyze. See tests/common/tools.rs for how a missing tool is treated.

#[path = "common/tools.rs"]
mod tools;

use std::path::Path;
use std::process::Command;

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
    assert!(froms[0].contains("rust:1.") && !froms[0].contains("latest"), "pinned builder: {}", froms[0]);
    assert!(froms[1].starts_with("gcr.io/distroless/"), "minimal runtime: {}", froms[1]);
    let user = dockerfile.lines().rev().find_map(|l| l.strip_prefix("USER ")).expect("a USER");
    assert!(!user.starts_with("root") && !user.starts_with('0'), "runs as {user}");
    assert!(dockerfile.contains(&format!("EXPOSE {}", default_port())));
    assert!(
        dockerfile.contains(&format!("org.opencontainers.image.version=\"{}\"", env!("CARGO_PKG_VERSION"))),
        "the label tracks Cargo.toml"
    );
    assert!(!dockerfile.to_lowercase().contains("token="), "no token baked in");
    let ignore = read(".dockerignore");
    assert_eq!(ignore.lines().find(|l| !l.starts_with('#')), Some("*"), ".dockerignore admits only listed paths");
    assert!(!ignore.contains("!target") && !ignore.contains("!.git"));
}

fn compose_config(env: &[(&str, &str)]) -> Value {
    let Some(compose) = tool("docker-compose") else { return Value::Null };
    let file = repo_path("deploy/docker-compose.yml");
    let (ok, output) = run_tool(&compose, &["-f", file.to_str().unwrap(), "config", "--quiet"], None);
    assert!(ok && output.trim().is_empty(), "docker compose config --quiet: {output}");
    let mut command = Command::new(&compose);
    command
        .args(["-f", file.to_str().unwrap(), "config", "--format", "json"])
        .env_remove("WOLKVOX_SERVER")
        .env_remove("WOLKVOX_TOKEN_FILE");
    command.envs(env.iter().copied());
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
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

    let real = compose_config(&[("WOLKVOX_SERVER", "0042"), ("WOLKVOX_TOKEN_FILE", "/srv/wolkvox/token")]);
    assert_eq!(real["services"]["wolkvox-exporter"]["command"], serde_json::json!(["--wolkvox.server=0042"]));
    assert_eq!(real["secrets"]["wolkvox_token"]["file"], "/srv/wolkvox/token");
}

#[test]
fn kubernetes_manifests_pass_the_schemas() {
    let Some(validate) = tool("kubernetes-validate") else { return };
    for manifest in ["deployment.yaml", "service.yaml", "dashboard-configmap.yaml"] {
        let path = repo_path(&format!("deploy/kubernetes/{manifest}"));
        let (ok, output) = run_tool(&validate, &["--strict", path.to_str().unwrap()], None);
        assert!(ok && output.contains("passed") && !output.contains("ERROR"), "{manifest}: {output}");
    }
}

#[test]
fn the_deployment_is_one_hardened_replica_with_probes_and_a_secret_token() {
    let deployment = yaml("deploy/kubernetes/deployment.yaml");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 1, "one token, one poller");
    assert_eq!(spec["strategy"]["type"], "Recreate", "a rolling update would run two pollers at once");
    let pod = &spec["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    let security = &container["securityContext"];
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"], serde_json::json!(["ALL"]));
    for kind in ["requests", "limits"] {
        assert!(container["resources"][kind]["memory"].is_string(), "memory {kind}");
    }
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/-/healthy");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/-/ready");
    assert_eq!(container["ports"][0]["containerPort"].to_string(), default_port());
    assert!(container["args"].as_array().unwrap().iter().any(|a| a.as_str().unwrap().starts_with("--wolkvox.token-file=")));
    assert!(pod["volumes"][0]["secret"]["secretName"].is_string(), "the token comes from a Secret");
}

#[test]
fn service_monitor_selects_the_service_and_the_service_keeps_unready_pods() {
    let service = yaml("deploy/kubernetes/service.yaml");
    let monitor = yaml("deploy/kubernetes/servicemonitor.yaml");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["kind"], "ServiceMonitor");
    for (key, value) in monitor["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&service["metadata"]["labels"][key], value, "the ServiceMonitor selects the Service by {key}");
    }
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], service["spec"]["ports"][0]["name"]);
    assert_eq!(service["metadata"]["name"], "wolkvox", "the job label the alerts expect");
    assert_eq!(service["spec"]["publishNotReadyAddresses"], true);
}

#[test]
fn the_prometheus_rule_holds_exactly_the_bundled_rules_and_passes_promtool() {
    let rule = yaml("deploy/kubernetes/prometheusrule.yaml");
    assert_eq!(rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(rule["kind"], "PrometheusRule");
    assert_eq!(rule["spec"], yaml("deploy/prometheus/rules/wolkvox.rules.yml"), "drifted: run scripts/sync-kubernetes.sh");

    let Some(promtool) = tool("promtool") else { return };
    let file = temp_dir("prometheusrule").join("rules.yml");
    std::fs::write(&file, serde_norway::to_string(&rule["spec"]).unwrap()).unwrap();
    let (ok, output) = run_tool(&promtool, &["check", "rules", file.to_str().unwrap()], None);
    assert!(ok, "{output}");
}

#[test]
fn the_dashboard_config_map_carries_every_dashboard_unchanged() {
    let config_map = yaml("deploy/kubernetes/dashboard-configmap.yaml");
    assert_eq!(config_map["metadata"]["labels"]["grafana_dashboard"], "1");
    let data = config_map["data"].as_object().unwrap();
    let dashboards: Vec<_> = std::fs::read_dir(repo_path("dashboards")).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(data.len(), dashboards.len(), "drifted: run scripts/sync-kubernetes.sh");
    for path in dashboards {
        let name = path.file_name().unwrap().to_str().unwrap();
        let embedded = data[name].as_str().unwrap_or_else(|| panic!("{name} missing: run scripts/sync-kubernetes.sh"));
        let file = std::fs::read_to_string(&path).unwrap();
        assert_eq!(embedded.trim_end(), file.trim_end(), "{name} drifted: run scripts/sync-kubernetes.sh");
    }
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
    ] {
        assert!(unit.contains(key), "the unit lacks {key:?}");
    }
    let env = read("deploy/systemd/wolkvox_exporter.env");
    assert!(!env.contains("WOLKVOX_TOKEN="), "the token belongs in the credential, not the environment file");

    let Some(analyze) = Path::new("/usr/bin/systemd-analyze").exists().then_some("/usr/bin/systemd-analyze") else {
        eprintln!("no systemd-analyze on this machine: the structural checks above stand alone");
        return;
    };
    // Verify a copy pointing at the built binary and the bundled environment file.
    let dir = temp_dir("systemd");
    let copy = dir.join("wolkvox_exporter.service");
    let unit = unit
        .replace("/usr/local/bin/wolkvox_exporter", env!("CARGO_BIN_EXE_wolkvox_exporter"))
        .replace("/etc/default/wolkvox_exporter", repo_path("deploy/systemd/wolkvox_exporter.env").to_str().unwrap());
    std::fs::write(&copy, unit).unwrap();
    let (ok, output) = run_tool(Path::new(analyze), &["verify", copy.to_str().unwrap()], None);
    assert!(ok && output.trim().is_empty(), "systemd-analyze verify: {output}");
    let (_, security) = run_tool(Path::new(analyze), &["security", "--offline=true", copy.to_str().unwrap()], None);
    let exposure: f64 = security
        .lines()
        .find_map(|l| l.split_once("Overall exposure level for wolkvox_exporter.service: ")?.1.split_whitespace().next()?.parse().ok())
        .expect("an exposure level");
    assert!(exposure <= 2.0, "systemd-analyze security rates the unit {exposure} (at most 2.0 expected)");
}
