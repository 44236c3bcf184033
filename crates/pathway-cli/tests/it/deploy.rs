//! The deployment files under `deploy/` parse and hang together: every YAML
//! file parses, Kubernetes documents are complete, the API Deployment probes
//! the right paths and runs as non-root, disruption budgets and Services
//! select existing pods, compose references only what it defines, the NATS
//! routes name all three nodes, systemd units carry their required keys, the
//! Dockerfile is multi-stage and non-root, every `pathway` subcommand, flag
//! and `PATHWAY_*` variable used exists, and no file holds a real secret.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
};

use serde::Deserialize as _;
use serde_yaml_ng::Value;

/// The one placeholder every secret value in `deploy/` uses.
const PLACEHOLDER: &str = "REPLACE-ME";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn deploy() -> PathBuf {
    repo().join("deploy")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every file under `dir`, recursively, in a stable order.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn is_yaml(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("yml" | "yaml"))
}

/// The documents of a YAML file, with merge keys (`<<: *anchor`) applied.
fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = read(path);
    let mut docs = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(&text) {
        let mut value =
            Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        value
            .apply_merge()
            .unwrap_or_else(|e| panic!("{}: merge keys: {e}", path.display()));
        if !value.is_null() {
            docs.push(value);
        }
    }
    docs
}

fn get<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, key| v.get(*key))
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    get(v, path).and_then(Value::as_str)
}

fn seq<'v>(v: &'v Value, path: &[&str]) -> Vec<&'v Value> {
    get(v, path)
        .and_then(Value::as_sequence)
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

fn strings(v: &Value, path: &[&str]) -> Vec<String> {
    seq(v, path)
        .into_iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn mapping_keys(v: &Value, path: &[&str]) -> BTreeSet<String> {
    get(v, path)
        .and_then(Value::as_mapping)
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn labels(v: &Value, path: &[&str]) -> BTreeMap<String, String> {
    get(v, path)
        .and_then(Value::as_mapping)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn k8s_docs() -> Vec<(PathBuf, Value)> {
    files(&deploy().join("k8s"))
        .into_iter()
        .filter(|p| is_yaml(p))
        .flat_map(|p| yaml_docs(&p).into_iter().map(move |d| (p.clone(), d)))
        .collect()
}

fn k8s_named<'d>(docs: &'d [(PathBuf, Value)], kind: &str, name: &str) -> &'d Value {
    docs.iter()
        .map(|(_, d)| d)
        .find(|d| {
            str_at(d, &["kind"]) == Some(kind) && str_at(d, &["metadata", "name"]) == Some(name)
        })
        .unwrap_or_else(|| panic!("no {kind} named {name} in deploy/k8s"))
}

fn compose() -> Value {
    let mut docs = yaml_docs(&deploy().join("compose/docker-compose.yml"));
    assert_eq!(docs.len(), 1, "docker-compose.yml: one document");
    docs.remove(0)
}

#[test]
fn every_yaml_file_parses() {
    let yaml: Vec<PathBuf> = files(&deploy())
        .into_iter()
        .filter(|p| is_yaml(p))
        .collect();
    for expected in [
        "compose/docker-compose.yml",
        "compose/prometheus.yml",
        "compose/alerts.yml",
        "k8s/nats.yaml",
        "k8s/nats-configmap.yaml",
        "k8s/pathway.yaml",
        "k8s/workers.yaml",
        "k8s/templates/secrets.example.yaml",
    ] {
        assert!(
            yaml.contains(&deploy().join(expected)),
            "deploy/{expected} is missing"
        );
    }
    for path in &yaml {
        assert!(
            !yaml_docs(path).is_empty(),
            "{}: no document",
            path.display()
        );
    }
}

#[test]
fn kubernetes_documents_are_complete_and_non_root() {
    let docs = k8s_docs();
    assert!(docs.len() >= 10, "only {} Kubernetes documents", docs.len());
    for (path, d) in &docs {
        for key in [&["apiVersion"][..], &["kind"], &["metadata", "name"]] {
            assert!(
                str_at(d, key).is_some_and(|s| !s.is_empty()),
                "{}: a document without {}",
                path.display(),
                key.join(".")
            );
        }
        let kind = str_at(d, &["kind"]).unwrap_or_default();
        if matches!(kind, "Deployment" | "StatefulSet") {
            let name = str_at(d, &["metadata", "name"]).unwrap_or_default();
            let pod = get(d, &["spec", "template", "spec"]).expect("pod spec");
            assert_eq!(
                get(pod, &["securityContext", "runAsNonRoot"]).and_then(Value::as_bool),
                Some(true),
                "{kind} {name}: runAsNonRoot"
            );
            let uid = get(pod, &["securityContext", "runAsUser"]).and_then(Value::as_u64);
            assert!(
                uid.is_some_and(|u| u != 0),
                "{kind} {name}: runAsUser {uid:?}"
            );
            // The selector must match the pod template's labels.
            let selector = labels(d, &["spec", "selector", "matchLabels"]);
            let pod_labels = labels(d, &["spec", "template", "metadata", "labels"]);
            assert!(
                !selector.is_empty() && selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
                "{kind} {name}: selector {selector:?} does not match {pod_labels:?}"
            );
            for c in seq(pod, &["containers"]) {
                assert_eq!(
                    get(c, &["securityContext", "allowPrivilegeEscalation"])
                        .and_then(Value::as_bool),
                    Some(false),
                    "{kind} {name}: allowPrivilegeEscalation"
                );
                assert!(
                    get(c, &["resources", "requests"]).is_some(),
                    "{kind} {name}: resources.requests"
                );
            }
        }
    }
}

#[test]
fn api_deployment_probes_the_right_paths_and_takes_secrets_from_a_secret() {
    let docs = k8s_docs();
    let deployment = k8s_named(&docs, "Deployment", "pathway");
    assert_eq!(
        get(deployment, &["spec", "replicas"]).and_then(Value::as_u64),
        Some(2)
    );
    let containers = seq(deployment, &["spec", "template", "spec", "containers"]);
    assert_eq!(containers.len(), 1);
    let c = containers[0];
    assert_eq!(
        str_at(c, &["readinessProbe", "httpGet", "path"]),
        Some("/readyz")
    );
    assert_eq!(
        str_at(c, &["livenessProbe", "httpGet", "path"]),
        Some("/healthz")
    );
    let env: BTreeMap<String, &Value> = seq(c, &["env"])
        .into_iter()
        .filter_map(|e| Some((str_at(e, &["name"])?.to_owned(), e)))
        .collect();
    for secret in ["PATHWAY_DATABASE_URL", "PATHWAY_TOKEN_SECRET"] {
        let e = env
            .get(secret)
            .unwrap_or_else(|| panic!("{secret} not set"));
        let secret_name = str_at(e, &["valueFrom", "secretKeyRef", "name"])
            .unwrap_or_else(|| panic!("{secret}: not from a Secret"));
        let key = str_at(e, &["valueFrom", "secretKeyRef", "key"]).expect("secret key");
        let template = k8s_named(&docs, "Secret", secret_name);
        assert!(
            mapping_keys(template, &["stringData"]).contains(key),
            "Secret {secret_name} has no key {key}"
        );
    }
    // Every secretKeyRef of every workload names a key of a Secret template.
    for (_, d) in &docs {
        for c in seq(d, &["spec", "template", "spec", "containers"]) {
            for e in seq(c, &["env"]) {
                if let Some(r) = get(e, &["valueFrom", "secretKeyRef"]) {
                    let (name, key) = (str_at(r, &["name"]), str_at(r, &["key"]));
                    let secret = k8s_named(&docs, "Secret", name.expect("name"));
                    assert!(
                        mapping_keys(secret, &["stringData"]).contains(key.expect("key")),
                        "Secret {name:?} has no key {key:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn disruption_budgets_and_services_select_existing_pods() {
    let docs = k8s_docs();
    let workloads: Vec<(String, BTreeMap<String, String>)> = docs
        .iter()
        .filter(|(_, d)| matches!(str_at(d, &["kind"]), Some("Deployment" | "StatefulSet")))
        .map(|(_, d)| {
            (
                str_at(d, &["metadata", "name"])
                    .unwrap_or_default()
                    .to_owned(),
                labels(d, &["spec", "template", "metadata", "labels"]),
            )
        })
        .collect();
    let selected = |selector: &BTreeMap<String, String>| -> Vec<String> {
        workloads
            .iter()
            .filter(|(_, l)| selector.iter().all(|(k, v)| l.get(k) == Some(v)))
            .map(|(n, _)| n.clone())
            .collect()
    };
    let pdb = k8s_named(&docs, "PodDisruptionBudget", "pathway");
    assert_eq!(
        get(pdb, &["spec", "minAvailable"]).and_then(Value::as_u64),
        Some(1)
    );
    assert_eq!(
        selected(&labels(pdb, &["spec", "selector", "matchLabels"])),
        ["pathway"],
        "the pathway PDB must select exactly the API Deployment"
    );
    for (path, d) in &docs {
        let name = str_at(d, &["metadata", "name"]).unwrap_or_default();
        let selector = match str_at(d, &["kind"]) {
            Some("PodDisruptionBudget") => labels(d, &["spec", "selector", "matchLabels"]),
            Some("Service") => labels(d, &["spec", "selector"]),
            _ => continue,
        };
        assert!(
            !selected(&selector).is_empty(),
            "{}: {name} selects no pods ({selector:?})",
            path.display()
        );
    }
}

#[test]
fn nats_cluster_routes_name_all_three_nodes() {
    let single = read(&deploy().join("nats/pathway.conf"));
    // Compose: one cluster.conf for the three services nats-1..3.
    let compose_conf = read(&deploy().join("compose/nats/cluster.conf"));
    let services = mapping_keys(&compose(), &["services"]);
    for node in ["nats-1", "nats-2", "nats-3"] {
        assert!(
            compose_conf.contains(&format!("nats://{node}:6222")),
            "compose cluster.conf: no route to {node}"
        );
        assert!(services.contains(node), "compose: no service {node}");
    }
    // Kubernetes: the ConfigMap's cluster.conf routes to the StatefulSet's pods.
    let docs = k8s_docs();
    let config = k8s_named(&docs, "ConfigMap", "nats-config");
    let k8s_conf = str_at(config, &["data", "cluster.conf"]).expect("cluster.conf");
    let sts = k8s_named(&docs, "StatefulSet", "nats");
    assert_eq!(
        get(sts, &["spec", "replicas"]).and_then(Value::as_u64),
        Some(3)
    );
    let headless = str_at(sts, &["spec", "serviceName"]).expect("serviceName");
    assert_eq!(
        str_at(
            k8s_named(&docs, "Service", headless),
            &["spec", "clusterIP"]
        ),
        Some("None"),
        "{headless} must be headless"
    );
    assert!(
        !seq(sts, &["spec", "volumeClaimTemplates"]).is_empty(),
        "NATS needs a volume per node"
    );
    for i in 0..3 {
        let route = format!("nats://nats-{i}.{headless}:6222");
        assert!(
            k8s_conf.contains(&route),
            "k8s cluster.conf: no route {route}"
        );
    }
    // The ConfigMap carries the single-server configuration unchanged.
    assert_eq!(
        str_at(config, &["data", "pathway.conf"]),
        Some(single.as_str()),
        "deploy/k8s/nats-configmap.yaml: pathway.conf differs from deploy/nats/pathway.conf"
    );
    for conf in [compose_conf.as_str(), k8s_conf] {
        for needle in [
            "include ./pathway.conf",
            "server_name: $NATS_SERVER_NAME",
            "sync_interval: always",
            "store_dir: \"/var/lib/nats/pathway\"",
            "name: pathway",
        ] {
            assert!(conf.contains(needle), "cluster.conf lacks {needle:?}");
        }
    }
}

#[test]
fn compose_references_only_what_it_defines() {
    let c = compose();
    let dir = deploy().join("compose");
    let services = mapping_keys(&c, &["services"]);
    let volumes = mapping_keys(&c, &["volumes"]);
    let networks = mapping_keys(&c, &["networks"]);
    for required in [
        "postgres-primary",
        "postgres-standby",
        "pathway-1",
        "pathway-2",
        "relay-1",
        "relay-2",
        "projections",
        "prometheus",
    ] {
        assert!(
            services.contains(required),
            "compose: no service {required}"
        );
    }
    let Some(map) = get(&c, &["services"]).and_then(Value::as_mapping) else {
        panic!("compose: services is not a mapping");
    };
    for (name, s) in map {
        let name = name.as_str().unwrap_or_default();
        for v in strings(s, &["volumes"]) {
            let source = v.split(':').next().unwrap_or_default();
            if source.starts_with('.') || source.starts_with('/') {
                assert!(
                    dir.join(source).exists(),
                    "service {name}: bind mount {source} does not exist"
                );
            } else {
                assert!(
                    volumes.contains(source),
                    "service {name}: volume {source} undefined"
                );
            }
        }
        let used_networks = match get(s, &["networks"]) {
            Some(Value::Mapping(m)) => m
                .keys()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect(),
            _ => strings(s, &["networks"]),
        };
        for n in used_networks {
            assert!(
                networks.contains(&n),
                "service {name}: network {n} undefined"
            );
        }
        let depends: BTreeSet<String> = match get(s, &["depends_on"]) {
            Some(Value::Mapping(_)) => mapping_keys(s, &["depends_on"]),
            _ => strings(s, &["depends_on"]).into_iter().collect(),
        };
        for d in depends {
            assert!(
                services.contains(&d),
                "service {name}: depends on unknown {d}"
            );
        }
        if let Some(env_file) = str_at(s, &["env_file"]) {
            let example = dir.join(format!("{env_file}.example"));
            assert!(example.exists(), "service {name}: no {}", example.display());
        }
    }
    // The primary is configured for streaming replication; the standby is
    // cloned with pg_basebackup.
    let primary = strings(&c, &["services", "postgres-primary", "command"]).join(" ");
    assert!(primary.contains("wal_level=replica"), "{primary}");
    let standby = read(&dir.join("postgres/standby-entrypoint.sh"));
    assert!(standby.contains("pg_basebackup") && standby.contains("--write-recovery-conf"));
}

#[test]
fn prometheus_scrapes_both_instances_with_existing_metrics() {
    let dir = deploy().join("compose");
    let prom = &yaml_docs(&dir.join("prometheus.yml"))[0];
    let services = mapping_keys(&compose(), &["services"]);
    let jobs = seq(prom, &["scrape_configs"]);
    let pathway = jobs
        .iter()
        .find(|j| str_at(j, &["job_name"]) == Some("pathway"))
        .expect("a pathway scrape job");
    assert_eq!(str_at(pathway, &["metrics_path"]), Some("/metrics"));
    let targets: Vec<String> = seq(pathway, &["static_configs"])
        .into_iter()
        .flat_map(|s| strings(s, &["targets"]))
        .collect();
    assert_eq!(targets, ["pathway-1:8080", "pathway-2:8080"]);
    for t in &targets {
        let host = t.split(':').next().unwrap_or_default();
        assert!(
            services.contains(host),
            "scrape target {t}: no such service"
        );
    }
    // Alerts use only metrics the server defines.
    let defined = read(&repo().join("crates/pathway-server/src/metrics.rs"));
    let alerts = read(&dir.join("alerts.yml"));
    let rules: Vec<String> = yaml_docs(&dir.join("alerts.yml"))
        .iter()
        .flat_map(|d| seq(d, &["groups"]))
        .flat_map(|g| seq(g, &["rules"]))
        .filter_map(|r| str_at(r, &["expr"]).map(str::to_owned))
        .collect();
    assert!(rules.len() >= 3, "{alerts}");
    for expr in &rules {
        for word in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("pathway_") {
                assert!(
                    defined.contains(&format!("\"{word}\"")),
                    "alert uses {word}, which the server does not export"
                );
            }
        }
    }
}

/// Sections of an INI-like systemd unit: name → key → values.
type Unit = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn parse_unit(path: &Path) -> Unit {
    let mut unit = Unit::new();
    let mut section: Option<String> = None;
    for (n, line) in read(path).lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.to_owned());
            unit.entry(name.to_owned()).or_default();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            panic!("{}:{}: not key=value: {line}", path.display(), n + 1);
        };
        let Some(s) = &section else {
            panic!("{}:{}: key outside a section", path.display(), n + 1);
        };
        assert!(
            !key.trim().is_empty() && !key.contains(' '),
            "{}:{}: bad key {key:?}",
            path.display(),
            n + 1
        );
        unit.entry(s.clone())
            .or_default()
            .entry(key.trim().to_owned())
            .or_default()
            .push(value.trim().to_owned());
    }
    unit
}

fn unit_value<'u>(unit: &'u Unit, section: &str, key: &str) -> Option<&'u str> {
    unit.get(section)?.get(key)?.last().map(String::as_str)
}

fn systemd_units() -> Vec<(PathBuf, Unit)> {
    files(&deploy().join("systemd"))
        .into_iter()
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("service" | "timer")
            )
        })
        .map(|p| {
            let unit = parse_unit(&p);
            (p, unit)
        })
        .collect()
}

#[test]
fn systemd_units_carry_their_required_keys() {
    let units = systemd_units();
    let names: BTreeSet<String> = units
        .iter()
        .filter_map(|(p, _)| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    for required in ["pathway.service", "pathway-relay.service"] {
        assert!(
            names.contains(required),
            "deploy/systemd/{required} is missing"
        );
    }
    for (path, unit) in &units {
        let file = path.display();
        assert!(
            unit_value(unit, "Unit", "Description").is_some(),
            "{file}: Description"
        );
        if path.extension().and_then(|e| e.to_str()) == Some("timer") {
            assert!(
                unit_value(unit, "Timer", "OnCalendar").is_some(),
                "{file}: OnCalendar"
            );
            let service = path.with_extension("service");
            assert!(service.exists(), "{file}: no {}", service.display());
            continue;
        }
        let ty = unit_value(unit, "Service", "Type");
        for (key, want) in [
            ("User", "pathway"),
            ("EnvironmentFile", "/etc/pathway/pathway.env"),
            ("NoNewPrivileges", "yes"),
            ("ProtectSystem", "strict"),
            ("ReadWritePaths", "/var/lib/pathway"),
        ] {
            assert_eq!(
                unit_value(unit, "Service", key),
                Some(want),
                "{file}: {key}"
            );
        }
        assert!(
            unit_value(unit, "Service", "ExecStart")
                .is_some_and(|e| e.starts_with("/usr/local/bin/pathway ")),
            "{file}: ExecStart"
        );
        if ty == Some("simple") {
            assert_eq!(
                unit_value(unit, "Service", "Restart"),
                Some("on-failure"),
                "{file}"
            );
            assert!(
                unit_value(unit, "Install", "WantedBy").is_some(),
                "{file}: WantedBy"
            );
        } else {
            assert_eq!(ty, Some("oneshot"), "{file}: Type");
        }
    }
    assert_eq!(
        unit_value(
            &parse_unit(&deploy().join("systemd/pathway.service")),
            "Service",
            "Type"
        ),
        Some("simple")
    );
}

#[test]
fn dockerfile_is_multi_stage_and_non_root() {
    let dir = deploy().join("docker");
    let text = read(&dir.join("Dockerfile"));
    let instructions: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let from: Vec<&&str> = instructions
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert!(from.len() >= 2, "multi-stage: {from:?}");
    assert!(
        from[0].to_ascii_lowercase().ends_with(" as builder"),
        "first stage must be `AS builder`: {}",
        from[0]
    );
    assert!(text.contains("cargo build --release --locked -p pathway-cli"));
    let user = instructions
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER instruction");
    let uid = user.split(':').next().unwrap_or_default().trim();
    assert!(!matches!(uid, "root" | "0" | ""), "USER {user}");
    let last_from = instructions
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .unwrap_or(0);
    let runtime_copies: Vec<&&str> = instructions[last_from..]
        .iter()
        .filter(|l| l.starts_with("COPY "))
        .collect();
    assert_eq!(
        runtime_copies.len(),
        2,
        "only the binary and the policy: {runtime_copies:?}"
    );
    assert!(
        runtime_copies
            .iter()
            .any(|l| l.contains("deploy/policy/authorization.toml"))
    );
    assert!(
        runtime_copies
            .iter()
            .any(|l| l.contains("--from=builder") && l.contains("pathway"))
    );
    let ignore = read(&dir.join("Dockerfile.dockerignore"));
    assert!(ignore.lines().any(|l| l.trim() == "target/"), "{ignore}");
}

/// `pathway <words> --help`, when it succeeds.
fn help(words: &[String]) -> Option<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_pathway"))
        .args(words)
        .arg("--help")
        .output()
        .expect("run pathway");
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Checks one `pathway` invocation: the subcommand exists, every flag and
/// every `PATHWAY_*` variable given to it appears in its help.
fn check_invocation(origin: &str, args: &[String], env: &[String]) {
    let mut words: Vec<String> = Vec::new();
    let mut text = help(&words).expect("pathway --help");
    for arg in args.iter().take_while(|a| !a.starts_with('-')) {
        let mut next = words.clone();
        next.push(arg.clone());
        match help(&next) {
            Some(t) if t.contains(&format!("Usage: pathway {}", next.join(" "))) => {
                words = next;
                text = t;
            }
            _ => break,
        }
    }
    assert!(
        !words.is_empty(),
        "{origin}: no pathway subcommand in {args:?}"
    );
    for flag in args.iter().filter(|a| a.starts_with("--")) {
        let flag = flag.split('=').next().unwrap_or_default();
        assert!(
            text.contains(&format!("{flag} ")) || text.contains(&format!("{flag}\n")),
            "{origin}: `pathway {}` has no flag {flag}",
            words.join(" ")
        );
    }
    for var in env.iter().filter(|v| v.starts_with("PATHWAY_")) {
        assert!(
            text.contains(&format!("env: {var}")),
            "{origin}: `pathway {}` does not read {var}",
            words.join(" ")
        );
    }
}

fn env_names(container: &Value, key: &str) -> Vec<String> {
    match get(container, &[key]) {
        Some(Value::Mapping(m)) => m
            .keys()
            .filter_map(|k| k.as_str().map(str::to_owned))
            .collect(),
        Some(Value::Sequence(s)) => s
            .iter()
            .filter_map(|e| {
                e.as_str()
                    .map(|s| s.split('=').next().unwrap_or_default().to_owned())
                    .or_else(|| str_at(e, &["name"]).map(str::to_owned))
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn pathway_subcommands_flags_and_variables_used_in_deploy_exist() {
    let mut checked = 0;
    // Compose: services built from the Dockerfile (entrypoint `pathway`).
    let c = compose();
    if let Some(services) = get(&c, &["services"]).and_then(Value::as_mapping) {
        for (name, s) in services {
            if str_at(s, &["image"]) != Some("pathway:dev") {
                continue;
            }
            let origin = format!("compose service {}", name.as_str().unwrap_or_default());
            check_invocation(
                &origin,
                &strings(s, &["command"]),
                &env_names(s, "environment"),
            );
            checked += 1;
        }
    }
    // Kubernetes: containers of the pathway image (entrypoint `pathway`).
    for (path, d) in k8s_docs() {
        for container in seq(&d, &["spec", "template", "spec", "containers"]) {
            if !str_at(container, &["image"]).is_some_and(|i| i.starts_with("pathway:")) {
                continue;
            }
            let origin = format!(
                "{} container {:?}",
                path.display(),
                str_at(container, &["name"])
            );
            check_invocation(
                &origin,
                &strings(container, &["args"]),
                &env_names(container, "env"),
            );
            checked += 1;
        }
    }
    // systemd: ExecStart lines; the example environment file's variables
    // must each be read by one of the units' commands.
    let mut unit_helps = String::new();
    for (path, unit) in systemd_units() {
        let Some(exec) = unit_value(&unit, "Service", "ExecStart") else {
            continue;
        };
        let mut words = exec.split_whitespace().map(str::to_owned);
        assert_eq!(words.next().as_deref(), Some("/usr/local/bin/pathway"));
        let args: Vec<String> = words.collect();
        check_invocation(&path.display().to_string(), &args, &[]);
        let sub: Vec<String> = args
            .iter()
            .take_while(|a| !a.starts_with('-'))
            .cloned()
            .collect();
        unit_helps.push_str(&help(&sub).unwrap_or_default());
        checked += 1;
    }
    for line in read(&deploy().join("systemd/pathway.env.example")).lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let var = line.split('=').next().unwrap_or_default();
        assert!(
            unit_helps.contains(&format!("env: {var}")),
            "pathway.env.example: no unit's command reads {var}"
        );
    }
    // The image's defaults are read by `pathway serve`.
    let serve = help(&["serve".to_owned()]).expect("serve --help");
    for line in read(&deploy().join("docker/Dockerfile")).lines() {
        for word in line.split(|c: char| c.is_whitespace() || c == '=') {
            if word.starts_with("PATHWAY_") {
                assert!(
                    serve.contains(&format!("env: {word}")),
                    "Dockerfile: serve ignores {word}"
                );
            }
        }
    }
    assert!(checked >= 10, "only {checked} invocations found");
}

/// The password of a URL's user info (`scheme://user:password@host`), if any.
fn url_passwords(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("://") {
        rest = &rest[i + 3..];
        let authority = rest
            .split(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'')
            .next()
            .unwrap_or_default();
        if let Some((userinfo, _)) = authority.rsplit_once('@')
            && let Some((_, password)) = userinfo.split_once(':')
        {
            out.push(password.to_owned());
        }
    }
    out
}

fn is_placeholder(value: &str) -> bool {
    value.contains(PLACEHOLDER) || value.starts_with('$') || value.is_empty()
}

#[test]
fn no_file_holds_a_real_secret() {
    for path in files(&deploy()) {
        let file = path.display().to_string();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert!(
            name != ".env" && !name.ends_with(".pem") && !name.ends_with(".key"),
            "{file}: a secret file must never be in the repository"
        );
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        assert!(
            !(text.contains("-----BEGIN") && text.contains("PRIVATE KEY")),
            "{file}: a private key"
        );
        for (n, line) in text.lines().enumerate() {
            let at = format!("{file}:{}", n + 1);
            let trimmed = line.trim();
            if trimmed.starts_with('#') {
                continue;
            }
            for password in url_passwords(line) {
                assert!(
                    is_placeholder(&password),
                    "{at}: a password in a URL: {line}"
                );
            }
            // `key: value` or `KEY=value` where the key names a secret.
            let sep = trimmed.find([':', '=']);
            if let Some(i) = sep {
                let key = trimmed[..i]
                    .rsplit(|c: char| c.is_whitespace() || matches!(c, '{' | '-' | '"' | '\''))
                    .find(|w| !w.is_empty())
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                let value = trimmed[i + 1..]
                    .trim()
                    .trim_matches(|c| c == '"' || c == '\'' || c == ',');
                let secret_key = ["password", "secret", "token", "master-key", "master_key"]
                    .iter()
                    .any(|w| key.contains(w))
                    && !key.contains("ref")
                    && !key.contains("file");
                if secret_key && !value.starts_with('{') && !value.starts_with('[') {
                    assert!(
                        is_placeholder(value),
                        "{at}: {key} holds a value that is not {PLACEHOLDER}: {line}"
                    );
                }
            }
            // Long random-looking strings: hex or base64 keys.
            for word in line.split(|c: char| {
                !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-'))
            }) {
                let digits = word.chars().filter(char::is_ascii_digit).count();
                let letters = word.chars().filter(char::is_ascii_alphabetic).count();
                assert!(
                    !(word.len() >= 32 && digits >= 4 && letters >= 4 && !word.contains('/')),
                    "{at}: looks like a key: {word}"
                );
            }
        }
    }
}
