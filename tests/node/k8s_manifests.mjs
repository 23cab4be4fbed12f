// Checks deploy/k8s the way a cluster and the server would:
//   node k8s_manifests.mjs --strata PATH --deploy DIR [--kubectl PATH]
// Every overlay renders with `kubectl kustomize`; every object validates against the
// Kubernetes schemas (kubernetes-models; the Prometheus Operator's for ServiceMonitor; for a
// LeaderWorkerSet its pod templates against the core schema and its own fields as the LWS v1
// API documents them); and the objects agree with the server: every STRATA_* variable and
// flag is one the command in that container reads (from `strata <command> --help`), ports
// match the addresses the flags give, probes use /health and /ready, the grace period covers
// preStop plus the drain timeout, the worker count is TP x PP, every container runs non-root
// with a read-only root filesystem and no privilege, GPU overlays ask for GPUs.
// With --helm-render PATH (tests/deploy/helm_render, built from Debian's Go, text/template and
// Sprig: no Helm binary is packaged for Debian), deploy/helm/strata renders exactly the gpu
// overlay's objects with its default values, the cpu and multi-node overlays' with
// values-cpu.yaml and values-multi-node.yaml, and refuses values it cannot honour.
// Exits 1 listing every problem.
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { isDeepStrictEqual } from "node:util";
import { parseAllDocuments } from "yaml";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { PersistentVolumeClaim } from "kubernetes-models/v1/PersistentVolumeClaim";
import { PodTemplateSpec } from "kubernetes-models/v1/PodTemplateSpec";
import { Service } from "kubernetes-models/v1/Service";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { StatefulSet } from "kubernetes-models/apps/v1/StatefulSet";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import { ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (i % 2 ? pairs : [...pairs, [a.replace(/^--/, ""), all[i + 1]]]), []));
const kubectl = args.kubectl ?? "kubectl";
const overlays = {
  cpu: { device: "cpu", tag: "cpu", gpus: false, values: "values-cpu.yaml" },
  gpu: { device: "cuda", tag: "cuda", gpus: true, values: null },
  "multi-node": { device: "cuda", tag: "cuda", gpus: true, values: "values-multi-node.yaml" },
};
const IMAGE_UID = 10001;  // USER in deploy/docker/Dockerfile.*
const PROBE_PATHS = { livenessProbe: "/health", readinessProbe: "/ready", startupProbe: "/health" };

const problems = [];
const fail = (where, what) => problems.push(`${where}: ${what}`);

// What each command reads: its flags and their environment variables.
function commandInterface(command) {
  const help = execFileSync(args.strata, [command, "--help"], { encoding: "utf8" });
  const flags = new Set([...help.matchAll(/^\s+(?:-\w,)?(--[\w-]+)/gm)].map((m) => m[1]));
  const env = new Set([...help.matchAll(/\(Env:(STRATA_\w+)\)/g)].map((m) => m[1]));
  const defaults = Object.fromEntries([...help.matchAll(/^\s+(--[\w-]+) TEXT=(\S+)/gm)].map((m) => [m[1], m[2]]));
  return { flags, env, defaults };
}
const commands = { coordinator: commandInterface("coordinator"), worker: commandInterface("worker") };
if (commands.coordinator.env.size < 10 || commands.worker.env.size < 5) {
  fail("strata --help", "could not read the commands' environment variables");
}

// ---- LeaderWorkerSet: leaderworkerset.x-k8s.io/v1 as its API reference documents it ----------
function validateLeaderWorkerSet(obj, where) {
  const allowed = (o, keys, at) => {
    for (const k of Object.keys(o ?? {})) if (!keys.includes(k)) fail(where, `${at}.${k} is not a LeaderWorkerSet field`);
  };
  allowed(obj, ["apiVersion", "kind", "metadata", "spec"], "");
  const spec = obj.spec ?? {};
  allowed(spec, ["replicas", "leaderWorkerTemplate", "rolloutStrategy", "startupPolicy", "networkConfig"], "spec");
  if (!Number.isInteger(spec.replicas) || spec.replicas < 0) fail(where, "spec.replicas must be a non-negative integer");
  if (spec.startupPolicy && !["LeaderCreated", "LeaderReady"].includes(spec.startupPolicy)) {
    fail(where, `spec.startupPolicy ${spec.startupPolicy} is not LeaderCreated or LeaderReady`);
  }
  const rollout = spec.rolloutStrategy ?? {};
  allowed(rollout, ["type", "rollingUpdateConfiguration"], "spec.rolloutStrategy");
  if (rollout.type && rollout.type !== "RollingUpdate") fail(where, "spec.rolloutStrategy.type must be RollingUpdate");
  allowed(rollout.rollingUpdateConfiguration, ["maxUnavailable", "maxSurge", "partition"], "spec.rolloutStrategy.rollingUpdateConfiguration");
  const t = spec.leaderWorkerTemplate ?? {};
  allowed(t, ["size", "leaderTemplate", "workerTemplate", "restartPolicy", "subGroupPolicy"], "spec.leaderWorkerTemplate");
  if (!Number.isInteger(t.size) || t.size < 1) fail(where, "spec.leaderWorkerTemplate.size must be an integer >= 1");
  if (t.restartPolicy && !["RecreateGroupOnPodRestart", "None"].includes(t.restartPolicy)) {
    fail(where, `restartPolicy ${t.restartPolicy} is not RecreateGroupOnPodRestart or None`);
  }
  allowed(t.subGroupPolicy, ["subGroupSize", "type"], "spec.leaderWorkerTemplate.subGroupPolicy");
  if (t.subGroupPolicy && !(Number.isInteger(t.subGroupPolicy.subGroupSize) && t.subGroupPolicy.subGroupSize >= 1)) {
    fail(where, "subGroupPolicy.subGroupSize must be an integer >= 1");
  }
  if (!t.workerTemplate) fail(where, "spec.leaderWorkerTemplate.workerTemplate is required");
  for (const name of ["leaderTemplate", "workerTemplate"]) {
    if (!t[name]) continue;
    try {
      new PodTemplateSpec(t[name]).validate();
    } catch (e) {
      fail(`${where} ${name}`, e.message);
    }
  }
}

const models = {
  "v1/ConfigMap": ConfigMap,
  "v1/PersistentVolumeClaim": PersistentVolumeClaim,
  "v1/Service": Service,
  "apps/v1/Deployment": Deployment,
  "apps/v1/StatefulSet": StatefulSet,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "monitoring.coreos.com/v1/ServiceMonitor": ServiceMonitor,
};

function validate(obj, where) {
  const type = `${obj.apiVersion}/${obj.kind}`;
  if (type === "leaderworkerset.x-k8s.io/v1/LeaderWorkerSet") return validateLeaderWorkerSet(obj, where);
  const Model = models[type];
  if (!Model) return fail(where, `no schema for ${type}`);
  try {
    new Model(obj).validate();
  } catch (e) {
    fail(where, e.message);
  }
}

// Each pod template with its kind of pod: [{where, template, replicas}].
function podTemplates(obj) {
  if (obj.kind === "Deployment" || obj.kind === "StatefulSet") {
    return [{ where: `${obj.kind}/${obj.metadata.name}`, template: obj.spec.template, replicas: obj.spec.replicas }];
  }
  if (obj.kind === "LeaderWorkerSet") {
    const t = obj.spec.leaderWorkerTemplate;
    return [
      { where: `LeaderWorkerSet/${obj.metadata.name} leader`, template: t.leaderTemplate, replicas: 1 },
      { where: `LeaderWorkerSet/${obj.metadata.name} workers`, template: t.workerTemplate, replicas: t.size - 1 },
    ];
  }
  return [];
}

const portOf = (address) => Number(String(address).split(":").pop());

function run(program, argv) {
  try {
    return { out: execFileSync(program, argv, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }) };
  } catch (e) {
    return { error: e.stderr || e.message };
  }
}
const parseObjects = (text) => parseAllDocuments(text).map((d) => d.toJSON()).filter(Boolean);
const key = (o) => `${o.apiVersion} ${o.kind} ${o.metadata?.name}`;

// Where two objects first differ, as a path.
function firstDifference(a, b, path = "") {
  if (isDeepStrictEqual(a, b)) return null;
  if (a && b && typeof a === "object" && typeof b === "object") {
    for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const d = firstDifference(a[k], b[k], `${path}/${k}`);
      if (d) return d;
    }
  }
  return `${path || "/"}: ${JSON.stringify(a)} vs ${JSON.stringify(b)}`;
}

function checkChart(name, expect, objects) {
  const chart = `${args.deploy}/helm/strata`;
  const values = expect.values ? ["--values", `${chart}/${expect.values}`] : [];
  const rendered = run(args["helm-render"], [...values, "--release", "strata", chart]);
  if (rendered.error) return fail(`helm ${name}`, `render failed: ${rendered.error}`);
  const fromChart = new Map(parseObjects(rendered.out).map((o) => [key(o), o]));
  const fromKustomize = new Map(objects.map((o) => [key(o), o]));
  for (const k of new Set([...fromChart.keys(), ...fromKustomize.keys()])) {
    if (!fromChart.has(k)) fail(`helm ${name}`, `the chart lacks ${k}`);
    else if (!fromKustomize.has(k)) fail(`helm ${name}`, `the chart adds ${k}`);
    else {
      const d = firstDifference(fromChart.get(k), fromKustomize.get(k));
      if (d) fail(`helm ${name} ${k}`, `chart vs kustomize differ at ${d}`);
    }
  }
  console.log(`helm ${expect.values ?? "default values"}: the ${name} overlay's ${objects.length} objects exactly`);
}

function checkChartRefuses() {
  const chart = `${args.deploy}/helm/strata`;
  const dir = mkdtempSync(`${tmpdir()}/strata-helm-`);
  writeFileSync(`${dir}/values.yaml`, "replicas: 2\n");
  const r = run(args["helm-render"], ["--values", `${dir}/values.yaml`, chart]);
  if (!r.error?.includes("needs multiNode")) fail("helm", `replicas 2 without multiNode must fail naming why; got ${r.error ?? "a render"}`);
}

function checkOverlay(name, expect) {
  const dir = `${args.deploy}/k8s/overlays/${name}`;
  const rendered = run(kubectl, ["kustomize", dir]);
  if (rendered.error) return fail(name, `kubectl kustomize failed: ${rendered.error}`);
  const objects = parseObjects(rendered.out);
  if (args["helm-render"]) checkChart(name, expect, objects);
  for (const obj of objects) validate(obj, `${name} ${obj.kind}/${obj.metadata?.name}`);

  const config = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === "strata-config")?.data;
  if (!config) return fail(name, "no strata-config ConfigMap");
  const known = new Set([...commands.coordinator.env, ...commands.worker.env]);
  for (const key of Object.keys(config)) {
    if (!known.has(key)) fail(`${name} strata-config`, `${key} is read by neither strata coordinator nor strata worker`);
  }
  if (config.STRATA_DEVICE !== expect.device) fail(name, `STRATA_DEVICE is ${config.STRATA_DEVICE}, expected ${expect.device}`);
  const ranks = Number(config.STRATA_TP) * Number(config.STRATA_PP);
  const drain = Number(config.STRATA_DRAIN_TIMEOUT_S ?? 30);
  const ports = {
    http: portOf(config.STRATA_HTTP ?? commands.coordinator.defaults["--http"]),
    cluster: portOf(config.STRATA_LISTEN ?? commands.coordinator.defaults["--listen"]),
    worker: portOf(config.STRATA_WORKER_LISTEN ?? "0.0.0.0:0"),
  };

  const volumesClaimed = new Set();
  const podLabels = [];
  let coordinators = 0, workers = 0;
  for (const obj of objects) {
    for (const { where: w, template, replicas } of podTemplates(obj)) {
      const where = `${name} ${w}`;
      const pod = template.spec;
      podLabels.push(template.metadata?.labels ?? {});
      if (pod.securityContext?.runAsNonRoot !== true) fail(where, "pod securityContext.runAsNonRoot must be true");
      if (pod.securityContext?.runAsUser !== IMAGE_UID) fail(where, `runAsUser must be the image's user ${IMAGE_UID}`);
      if (pod.automountServiceAccountToken !== false) fail(where, "automountServiceAccountToken must be false (the pods call no Kubernetes API)");
      for (const v of pod.volumes ?? []) if (v.persistentVolumeClaim) volumesClaimed.add(v.persistentVolumeClaim.claimName);
      for (const c of pod.containers) {
        const at = `${where} container ${c.name}`;
        const command = c.args?.[0];
        const iface = commands[command];
        if (!iface) {
          fail(at, `args must start with coordinator or worker, not ${command}`);
          continue;
        }
        for (const a of c.args.slice(1)) {
          const flag = a.split("=")[0];
          if (!iface.flags.has(flag)) fail(at, `strata ${command} has no flag ${flag}`);
        }
        for (const e of c.env ?? []) {
          if (e.name.startsWith("STRATA_") && !iface.env.has(e.name)) fail(at, `strata ${command} does not read ${e.name}`);
        }
        if (!(c.envFrom ?? []).some((f) => f.configMapRef?.name === "strata-config")) fail(at, "does not take strata-config");
        if (!c.image.endsWith(`:${expect.tag}`)) fail(at, `image ${c.image} is not the ${expect.tag} image`);
        const sc = c.securityContext ?? {};
        if (sc.readOnlyRootFilesystem !== true) fail(at, "readOnlyRootFilesystem must be true");
        if (sc.allowPrivilegeEscalation !== false) fail(at, "allowPrivilegeEscalation must be false");
        if (!(sc.capabilities?.drop ?? []).includes("ALL")) fail(at, "capabilities must drop ALL");
        if (!(c.volumeMounts ?? []).some((m) => m.mountPath === "/models" && m.readOnly === true)) {
          fail(at, "the models volume must be mounted read-only at /models");
        }
        const containerPorts = Object.fromEntries((c.ports ?? []).map((p) => [p.name, p.containerPort]));
        const expectedPorts = command === "coordinator" ? ["http", "cluster"] : ["worker"];
        for (const p of expectedPorts) {
          if (containerPorts[p] !== ports[p]) fail(at, `port ${p} is ${containerPorts[p]}, the flags say ${ports[p]}`);
        }
        for (const [probe, path] of Object.entries(PROBE_PATHS)) {
          const p = c[probe];
          if (!p?.httpGet) continue;
          if (p.httpGet.path !== path) fail(at, `${probe} asks ${p.httpGet.path}, expected ${path}`);
          if (p.httpGet.port !== "http") fail(at, `${probe} must use the http port`);
        }
        if (command === "coordinator") {
          coordinators += replicas;
          for (const probe of Object.keys(PROBE_PATHS)) if (!c[probe]?.httpGet) fail(at, `needs an HTTP ${probe}`);
          const sleep = Number(c.lifecycle?.preStop?.exec?.command?.[1] ?? 0);
          const grace = pod.terminationGracePeriodSeconds ?? 30;
          if (grace < sleep + drain + 5) {
            fail(at, `terminationGracePeriodSeconds ${grace} < preStop ${sleep} s + drain ${drain} s + 5 s`);
          }
        } else {
          workers += replicas;
          if (!c.livenessProbe) fail(at, "needs a livenessProbe");
          const names = (c.env ?? []).map((e) => e.name);
          for (const n of ["STRATA_ADVERTISE_HOST", "STRATA_NODE_NAME"]) if (!names.includes(n)) fail(at, `needs ${n} (downward API)`);
          const gpus = c.resources?.limits?.["nvidia.com/gpu"];
          if (expect.gpus && gpus === undefined) fail(at, "a GPU worker needs an nvidia.com/gpu limit");
          if (!expect.gpus && gpus !== undefined) fail(at, "a CPU worker asks for a GPU");
          if (expect.gpus && !(pod.tolerations ?? []).some((t) => t.key === "nvidia.com/gpu")) fail(at, "needs the nvidia.com/gpu toleration");
        }
        if (!c.resources?.requests?.cpu || !c.resources?.requests?.memory) fail(at, "needs cpu and memory requests");
      }
    }
    if (obj.kind === "LeaderWorkerSet") {
      const t = obj.spec.leaderWorkerTemplate;
      if (t.subGroupPolicy && t.subGroupPolicy.subGroupSize !== Number(config.STRATA_TP)) {
        fail(`${name} LeaderWorkerSet`, `subGroupSize ${t.subGroupPolicy.subGroupSize} is not STRATA_TP ${config.STRATA_TP}`);
      }
    }
  }
  if (coordinators !== 1) fail(name, `${coordinators} coordinators per group, expected 1`);
  if (workers !== ranks) fail(name, `${workers} workers, but STRATA_TP x STRATA_PP = ${ranks}`);

  // Services select pods that exist; the coordinator's ports are the flags'.
  const services = objects.filter((o) => o.kind === "Service");
  for (const s of services) {
    const sel = Object.entries(s.spec.selector ?? {});
    if (!podLabels.some((l) => sel.every(([k, v]) => l[k] === v))) fail(`${name} Service/${s.metadata.name}`, "selects no pod");
  }
  const coordinator = services.find((s) => s.metadata.name === "strata-coordinator");
  if (!coordinator) {
    fail(name, "no strata-coordinator Service");
  } else {
    for (const p of ["http", "cluster"]) {
      const sp = coordinator.spec.ports.find((x) => x.name === p);
      if (!sp || sp.targetPort !== p || sp.port !== ports[p]) fail(`${name} Service/strata-coordinator`, `port ${p} must be ${ports[p]} -> ${p}`);
    }
    const [host, port] = String(config.STRATA_COORDINATOR).split(":");
    if (host !== "strata-coordinator" || Number(port) !== ports.cluster) {
      fail(`${name} strata-config`, `STRATA_COORDINATOR ${config.STRATA_COORDINATOR} is not the Service's cluster port`);
    }
    const monitor = objects.find((o) => o.kind === "ServiceMonitor");
    if (!monitor) {
      fail(name, "no ServiceMonitor");
    } else {
      const sel = Object.entries(monitor.spec.selector.matchLabels ?? {});
      if (!sel.every(([k, v]) => coordinator.metadata.labels?.[k] === v)) fail(`${name} ServiceMonitor`, "does not select the coordinator's Service");
      for (const e of monitor.spec.endpoints) {
        if (e.port !== "http" || e.path !== "/metrics") fail(`${name} ServiceMonitor`, "must scrape /metrics on the http port");
      }
    }
  }
  for (const claim of volumesClaimed) {
    if (!objects.some((o) => o.kind === "PersistentVolumeClaim" && o.metadata.name === claim)) fail(name, `no PersistentVolumeClaim ${claim}`);
  }
  if (!objects.some((o) => o.kind === "PodDisruptionBudget")) fail(name, "no PodDisruptionBudget");
  console.log(`${name}: ${objects.length} objects rendered and checked`);
}

for (const [name, expect] of Object.entries(overlays)) checkOverlay(name, expect);
if (args["helm-render"]) checkChartRefuses();
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log("deploy/k8s: every overlay renders, validates and agrees with the server");
