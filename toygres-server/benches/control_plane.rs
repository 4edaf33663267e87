//! Control-plane overhead on creates: creates per second through the real HTTP API, on a
//! backend whose own steps cost nothing, against trivial orchestrations per second on raw
//! Duroxide + duroxide-pg, in the same run, on the same PostgreSQL server
//! (docs/benchmarks.md, "Control-plane overhead on creates").
//!
//! ```sh
//! cargo bench -p toygres-server --bench control_plane
//! ```
//!
//! Settings (environment): `TOYGRES_BENCH_CREATES` (items per measured phase, 200),
//! `TOYGRES_BENCH_CONCURRENCY` (items in flight, 8), `TOYGRES_BENCH_ROUNDS` (3),
//! `TOYGRES_BENCH_POLL_MS` (each waiter polls its item's status after 5 ms, then backs off,
//! doubling, to at most this, as Duroxide's `wait_for_orchestration` does: 100),
//! `TOYGRES_BENCH_WAIT` (what a create's waiter polls: `operation`, `GET /operations/{id}`
//! until `succeeded`, the default, as the CLI and the README do; or `instance`,
//! `GET /instances/{name}` until `running`). The control-plane database is a fresh database per
//! phase on the tests' throwaway server (`TOYGRES_TEST_DATABASE_URL` when set).
//!
//! What a create still does for real here: the API request (validation, the accept
//! transaction, sealing three generated passwords, starting the workflow), every workflow step
//! and metadata write, computing the SCRAM verifiers, and the PostgreSQL work of an instance:
//! `configure_roles` connects as `toygres_admin` (SCRAM) and runs its role transaction, and the
//! two connection tests log in (SCRAM) as `toygres_monitor` and as the owner and run their
//! query. What costs nothing: deploy (one `ALTER ROLE` on an open session stands for initdb's
//! password file), readiness, endpoint. The instance side is one of `concurrency` real
//! PostgreSQL clusters made by the local backend before the measurement; each driver task
//! points its creates at its own cluster, so no two creates change one cluster's roles at once.

use duroxide::runtime::Runtime;
use duroxide::runtime::registry::ActivityRegistry;
use duroxide::{
    ActivityContext, Client, EventKind, OrchestrationContext, OrchestrationRegistry,
    OrchestrationStatus,
};
use duroxide_pg::PostgresProvider;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use toygres_activities::backend::local::{LocalBackend, LocalConfig};
use toygres_activities::backend::{
    Backend, BackendError, DeployOutcome, DeploySpec, Endpoint, InstanceRef, OwnedInstance,
    Readiness,
};
use toygres_activities::metadata::MetadataStore;
use toygres_activities::model::Expose;
use toygres_activities::registry::ActivityDeps;
use toygres_activities::seal::SecretKey;
use toygres_activities::testkit;
use toygres_activities::validation::InstanceName;
use toygres_orchestrations::types::{ChangeLimits, CreateLimits, DeleteLimits, HealthSettings};
use toygres_server::http::api::auth::Authentication;
use toygres_server::http::api::cross_site::Scheme;
use toygres_server::http::api::{self, AppState};
use toygres_server::plane::ControlPlane;
use toygres_server::runtime::{RuntimeSettings, WakingStore, Workflows, open_store};

type BenchError = Box<dyn std::error::Error + Send + Sync>;
type BenchResult<T = ()> = Result<T, BenchError>;

/// What one run does.
#[derive(Debug, Clone, Copy)]
struct Options {
    /// Items per measured phase.
    items: usize,
    /// Items in flight at once (and real instance clusters).
    concurrency: usize,
    /// Rounds; each runs the three phases once.
    rounds: usize,
    /// The longest pause between a waiter's status polls.
    poll: Duration,
    /// What a create's waiter polls.
    wait: WaitBy,
}

/// What a create's waiter polls through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WaitBy {
    /// `GET /instances/{name}` until `running` (one metadata read).
    Instance,
    /// `GET /operations/{id}` until `succeeded` (an unfinished one also reads the workflow's
    /// status from the store).
    Operation,
}

impl Options {
    fn from_env() -> BenchResult<Self> {
        fn number(name: &str, default: u64) -> BenchResult<u64> {
            match std::env::var(name) {
                Ok(raw) if !raw.trim().is_empty() => raw
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name}={raw}: not a number").into()),
                _ => Ok(default),
            }
        }
        Ok(Self {
            items: number("TOYGRES_BENCH_CREATES", 200)?.max(1) as usize,
            concurrency: number("TOYGRES_BENCH_CONCURRENCY", 8)?.clamp(1, 64) as usize,
            rounds: number("TOYGRES_BENCH_ROUNDS", 3)?.max(1) as usize,
            poll: Duration::from_millis(number("TOYGRES_BENCH_POLL_MS", 100)?.max(1)),
            wait: match std::env::var("TOYGRES_BENCH_WAIT").as_deref() {
                Err(_) | Ok("" | "operation") => WaitBy::Operation,
                Ok("instance") => WaitBy::Instance,
                Ok(other) => {
                    return Err(format!(
                        "TOYGRES_BENCH_WAIT={other}: expected instance or operation"
                    )
                    .into());
                }
            },
        })
    }
}

/// Which side a phase measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// Creates through the HTTP API of the in-process control plane.
    Creates,
    /// Trivial orchestrations on a plain duroxide-pg provider.
    Raw,
    /// The same on the provider wrapped in Toygres's [`WakingStore`].
    RawWaking,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Creates => "creates via API",
            Side::Raw => "raw duroxide-pg",
            Side::RawWaking => "raw + WakingStore",
        }
    }
}

/// What one phase measured.
#[derive(Debug, Clone, Default)]
struct Phase {
    /// Items finished.
    items: usize,
    /// From the first start to the last item seen finished.
    elapsed: Duration,
    /// Committed transactions of the phase's database.
    transactions: u64,
    /// CPU of this process (API, runtime, activities, the driver).
    cpu_process: Duration,
    /// CPU of the control-plane PostgreSQL server (all its processes).
    cpu_control_plane: Option<Duration>,
    /// CPU of the instance clusters.
    cpu_instances: Option<Duration>,
    /// Status polls the waiters made.
    polls: u64,
    /// Per item, from its start request to the poll that saw it finished.
    latencies: Vec<Duration>,
    /// What one status poll costs on its own (measured after the phase).
    poll_cost: Option<PollCost>,
}

/// The cost of one status poll of a finished item, measured alone.
#[derive(Debug, Clone, Copy, Default)]
struct PollCost {
    transactions: f64,
    cpu_process_ms: f64,
    cpu_control_plane_ms: Option<f64>,
}

impl PollCost {
    /// What `calibration` (only polls) cost beyond `idle` (the same measurement, no polls).
    fn of(calibration: &Phase, idle: &Phase) -> Self {
        let polls = calibration.items.max(1) as f64;
        let ms = |busy: Duration, idle: Duration| {
            (busy.as_secs_f64() - idle.as_secs_f64()).max(0.0) * 1000.0 / polls
        };
        Self {
            transactions: calibration.transactions.saturating_sub(idle.transactions) as f64 / polls,
            cpu_process_ms: ms(calibration.cpu_process, idle.cpu_process),
            cpu_control_plane_ms: match (calibration.cpu_control_plane, idle.cpu_control_plane) {
                (Some(busy), Some(idle)) => Some(ms(busy, idle)),
                _ => None,
            },
        }
    }
}

/// Status polls per calibration.
const CALIBRATION_POLLS: usize = 500;

impl Phase {
    fn per_second(&self) -> f64 {
        self.items as f64 / self.elapsed.as_secs_f64()
    }

    fn per_item(&self, total: Duration) -> f64 {
        total.as_secs_f64() * 1000.0 / self.items as f64
    }
}

fn main() -> BenchResult {
    let options = Options::from_env()?;
    // What the server logs (its default filter, or RUST_LOG) is formatted on both sides, as in
    // `toygres serve`, and discarded (a terminal's speed is not what is measured).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::sink)
        .try_init();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(run(options))
}

async fn run(options: Options) -> BenchResult {
    println!(
        "control-plane overhead: {} items per phase, {} in flight, {} rounds, status polls backing off from 5 to {} ms (creates: {}); load average {}",
        options.items,
        options.concurrency,
        options.rounds,
        options.poll.as_millis(),
        match options.wait {
            WaitBy::Instance => "GET /instances/{name}",
            WaitBy::Operation => "GET /operations/{id}",
        },
        load_average(),
    );
    let metrics = toygres_server::http::metrics::install()
        .map_err(|error| format!("installing the metrics recorder: {error}"))?;
    let instances = InstanceClusters::start(options.concurrency).await?;
    println!(
        "{} instance clusters (PostgreSQL {}) on ports {}",
        instances.slots.len(),
        instances.version,
        instances
            .slots
            .iter()
            .map(|slot| slot.endpoint.port.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let outcome = rounds(options, &instances, &metrics).await;
    println!("load average at the end: {}", load_average());
    instances.remove().await;
    outcome
}

async fn rounds(
    options: Options,
    instances: &InstanceClusters,
    metrics: &metrics_exporter_prometheus::PrometheusHandle,
) -> BenchResult {
    let mut results: BTreeMap<&'static str, Vec<Phase>> = BTreeMap::new();
    let mut breakdown = None;
    for round in 1..=options.rounds {
        for side in [Side::Creates, Side::Raw, Side::RawWaking] {
            let phase = match side {
                Side::Creates => {
                    let (phase, histories) = creates_phase(options, instances, metrics).await?;
                    breakdown = Some(histories);
                    phase
                }
                Side::Raw | Side::RawWaking => trivial_phase(options, side).await?,
            };
            report_phase(round, side, &phase);
            results.entry(side.label()).or_default().push(phase);
        }
    }
    summarize(options, &results);
    if let Some(histories) = breakdown {
        histories.print();
    }
    Ok(())
}

fn report_phase(round: usize, side: Side, phase: &Phase) {
    println!(
        "round {round} {:<18} {:>4} in {:>6.2} s = {:>7.1}/s | {:>6.1} tx/item | CPU ms/item: process {:>5.2}, control-plane pg {}, instances {} | {:.1} polls/item | latency p50 {:.0} ms",
        side.label(),
        phase.items,
        phase.elapsed.as_secs_f64(),
        phase.per_second(),
        phase.transactions as f64 / phase.items as f64,
        phase.per_item(phase.cpu_process),
        optional_ms(phase, phase.cpu_control_plane),
        optional_ms(phase, phase.cpu_instances),
        phase.polls as f64 / phase.items as f64,
        median(&phase.latencies).as_secs_f64() * 1000.0,
    );
    if let Some(cost) = phase.poll_cost {
        let polls = phase.polls as f64 / phase.items as f64;
        println!(
            "        one status poll alone: {:.2} tx, CPU ms process {:.3}, control-plane pg {}; so the polls were {:.1} tx/item, {:.2} + {} CPU ms/item",
            cost.transactions,
            cost.cpu_process_ms,
            cost.cpu_control_plane_ms
                .map_or_else(|| "n/a".to_string(), |ms| format!("{ms:.3}")),
            cost.transactions * polls,
            cost.cpu_process_ms * polls,
            cost.cpu_control_plane_ms
                .map_or_else(|| "n/a".to_string(), |ms| format!("{:.2}", ms * polls)),
        );
    }
}

fn optional_ms(phase: &Phase, cpu: Option<Duration>) -> String {
    cpu.map_or_else(
        || "n/a".to_string(),
        |cpu| format!("{:.2}", phase.per_item(cpu)),
    )
}

fn summarize(options: Options, results: &BTreeMap<&'static str, Vec<Phase>>) {
    println!();
    println!(
        "| side | items/s (median of {}) | transactions per item | CPU ms per item: process / control-plane PostgreSQL / instances | p50 latency |",
        options.rounds
    );
    println!("|---|---|---|---|---|");
    let mut rates = BTreeMap::new();
    for side in [Side::Creates, Side::Raw, Side::RawWaking] {
        let Some(phases) = results.get(side.label()) else {
            continue;
        };
        let rate = median_f64(phases.iter().map(Phase::per_second).collect());
        rates.insert(side.label(), rate);
        let tx = median_f64(
            phases
                .iter()
                .map(|phase| phase.transactions as f64 / phase.items as f64)
                .collect(),
        );
        let cpu = |pick: &dyn Fn(&Phase) -> Option<Duration>| {
            let values: Vec<f64> = phases
                .iter()
                .filter_map(|phase| pick(phase).map(|cpu| phase.per_item(cpu)))
                .collect();
            if values.is_empty() {
                "n/a".to_string()
            } else {
                format!("{:.2}", median_f64(values))
            }
        };
        let latency = median_f64(
            phases
                .iter()
                .map(|phase| median(&phase.latencies).as_secs_f64() * 1000.0)
                .collect(),
        );
        println!(
            "| {} | {:.1} ({}) | {:.1} | {} / {} / {} | {:.0} ms |",
            side.label(),
            rate,
            phases
                .iter()
                .map(|phase| format!("{:.1}", phase.per_second()))
                .collect::<Vec<_>>()
                .join(", "),
            tx,
            cpu(&|phase| Some(phase.cpu_process)),
            cpu(&|phase| phase.cpu_control_plane),
            cpu(&|phase| phase.cpu_instances),
            latency,
        );
    }
    if let (Some(creates), Some(raw)) = (
        rates.get(Side::Creates.label()),
        rates.get(Side::Raw.label()),
    ) {
        println!();
        println!(
            "ratio creates/s : raw trivial orchestrations/s = {:.3} (target at least 0.5)",
            creates / raw
        );
        if let Some(waking) = rates.get(Side::RawWaking.label()) {
            println!(
                "ratio creates/s : raw + WakingStore orchestrations/s = {:.3}",
                creates / waking
            );
        }
    }
}

/// The first three fields of `/proc/loadavg`.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|raw| raw.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".to_string())
}

fn median(values: &[Duration]) -> Duration {
    let mut sorted = values.to_vec();
    sorted.sort();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

fn median_f64(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The instance side: real clusters, and a backend whose own steps cost nothing.

/// One real PostgreSQL cluster that the creates of one driver task point at, one after another.
struct Slot {
    /// Where it listens.
    endpoint: Endpoint,
    /// A `toygres_admin` session opened before any create changed that role's password.
    admin: tokio_postgres::Client,
    /// Its data directory (for its postmaster's CPU).
    data_dir: PathBuf,
}

/// The clusters, made by the real local backend as instances `slot-0`, `slot-1`, ...
struct InstanceClusters {
    local: LocalBackend,
    slots: Vec<Arc<Slot>>,
    uids: Vec<(InstanceName, String)>,
    version: String,
    _dir: tempfile::TempDir,
}

impl InstanceClusters {
    async fn start(count: usize) -> BenchResult<Self> {
        let dir = testkit::shared_tempdir()?;
        let local = LocalBackend::new(LocalConfig {
            root: dir.path().join("instances"),
            bin_dir: None,
            ports: testkit::port_range_for("control-plane-bench", count as u16 + 2),
        })?;
        let version = local
            .versions()
            .last()
            .cloned()
            .ok_or("the local backend offers no PostgreSQL version")?;
        let mut clusters = Self {
            local,
            slots: Vec::new(),
            uids: Vec::new(),
            version,
            _dir: dir,
        };
        for index in 0..count {
            if let Err(error) = clusters.add(index).await {
                clusters.remove().await;
                return Err(error);
            }
        }
        Ok(clusters)
    }

    async fn add(&mut self, index: usize) -> BenchResult {
        let name = InstanceName::parse(&format!("slot-{index}"))?;
        let uid = format!("bench-{index}-{}", std::process::id());
        let password = format!("bench-{}", random_token());
        let spec = DeploySpec {
            name: name.clone(),
            namespace: None,
            uid: uid.clone(),
            postgres_version: self.version.clone(),
            storage_gb: 1,
            superuser: toygres_activities::roles::ADMIN.to_string(),
            superuser_verifier: toygres_activities::roles::scram_verifier(&password),
            expose: Expose::Internal,
            dns_label: None,
        };
        self.uids.push((name.clone(), uid));
        self.local.deploy(&spec).await?;
        let instance = InstanceRef::in_default(&name);
        match self
            .local
            .wait_ready(instance, Duration::from_secs(60))
            .await?
        {
            Readiness::Ready => {}
            other => return Err(format!("{name} did not become ready: {other:?}").into()),
        }
        let endpoint = self.local.endpoint(instance).await?;
        let (admin, connection) = tokio_postgres::Config::new()
            .host(&endpoint.host)
            .port(endpoint.port)
            .user(toygres_activities::roles::ADMIN)
            .password(password.as_bytes())
            .dbname("postgres")
            .connect(tokio_postgres::NoTls)
            .await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let data_dir: String = admin.query_one("SHOW data_directory", &[]).await?.get(0);
        self.slots.push(Arc::new(Slot {
            endpoint,
            admin,
            data_dir: PathBuf::from(data_dir),
        }));
        Ok(())
    }

    /// Total CPU of the clusters' servers, when readable.
    fn cpu(&self) -> Option<Duration> {
        self.slots
            .iter()
            .map(|slot| postmaster_cpu(&slot.data_dir))
            .sum()
    }

    async fn remove(&self) {
        for (name, uid) in &self.uids {
            if let Err(error) = self.local.delete(InstanceRef::in_default(name), uid).await {
                eprintln!("removing {name}: {error}");
            }
        }
    }
}

/// The bench's backend: deploy, readiness and the endpoint cost nothing; instance `sN-...`
/// lives on the real cluster of slot N. Used by this benchmark only.
struct NoopBackend {
    slots: Vec<Arc<Slot>>,
    version: String,
    deployed: Mutex<BTreeMap<String, OwnedInstance>>,
}

impl std::fmt::Debug for NoopBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NoopBackend")
            .field("slots", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl NoopBackend {
    fn slot(&self, name: &InstanceName) -> Result<&Slot, BackendError> {
        slot_of(name.as_str())
            .and_then(|index| self.slots.get(index))
            .map(|slot| slot.as_ref())
            .ok_or_else(|| BackendError::Permanent(format!("{name} names no bench slot")))
    }

    fn deployed(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, OwnedInstance>> {
        self.deployed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Instances named `...-held` never become ready: their create stays running, for measuring
/// what a status poll of a running operation costs.
const HELD_SUFFIX: &str = "-held";

/// The slot of instance `sN-...`.
fn slot_of(name: &str) -> Option<usize> {
    name.strip_prefix('s')?.split('-').next()?.parse().ok()
}

fn unsupported() -> BackendError {
    BackendError::Unsupported("the benchmark's backend only creates".to_string())
}

#[async_trait::async_trait]
impl Backend for NoopBackend {
    fn kind(&self) -> &'static str {
        "bench-noop"
    }

    fn versions(&self) -> Vec<String> {
        vec![self.version.clone()]
    }

    async fn deploy(&self, spec: &DeploySpec) -> Result<DeployOutcome, BackendError> {
        let slot = self.slot(&spec.name)?;
        // What initdb does with its password file: the bootstrap superuser gets this create's
        // verifier.
        slot.admin
            .batch_execute(&format!(
                "ALTER ROLE \"{}\" PASSWORD '{}'",
                spec.superuser.replace('"', "\"\""),
                spec.superuser_verifier.replace('\'', "''")
            ))
            .await
            .map_err(|error| BackendError::Transient(error.to_string()))?;
        let owned = OwnedInstance {
            name: spec.name.clone(),
            namespace: None,
            uid: Some(spec.uid.clone()),
        };
        Ok(
            match self.deployed().insert(spec.name.to_string(), owned.clone()) {
                Some(previous) if previous == owned => DeployOutcome::Adopted,
                _ => DeployOutcome::Created,
            },
        )
    }

    async fn readiness(&self, instance: InstanceRef<'_>) -> Result<Readiness, BackendError> {
        let name = instance.name.as_str();
        Ok(if !self.deployed().contains_key(name) {
            Readiness::Missing
        } else if name.ends_with(HELD_SUFFIX) {
            Readiness::NotReady("held by the benchmark".to_string())
        } else {
            Readiness::Ready
        })
    }

    async fn endpoint(&self, instance: InstanceRef<'_>) -> Result<Endpoint, BackendError> {
        Ok(self.slot(instance.name)?.endpoint.clone())
    }

    async fn delete(&self, instance: InstanceRef<'_>, _uid: &str) -> Result<(), BackendError> {
        self.deployed().remove(instance.name.as_str());
        Ok(())
    }

    async fn list_owned(&self) -> Result<Vec<OwnedInstance>, BackendError> {
        Ok(self.deployed().values().cloned().collect())
    }

    async fn stop(&self, _instance: InstanceRef<'_>, _uid: &str) -> Result<(), BackendError> {
        Err(unsupported())
    }

    async fn start(&self, _instance: InstanceRef<'_>, _uid: &str) -> Result<(), BackendError> {
        Err(unsupported())
    }

    async fn restart(
        &self,
        _instance: InstanceRef<'_>,
        _uid: &str,
        _parameters: Option<&BTreeMap<String, String>>,
    ) -> Result<(), BackendError> {
        Err(unsupported())
    }

    async fn resize(
        &self,
        _instance: InstanceRef<'_>,
        _uid: &str,
        _storage_gb: u32,
    ) -> Result<(), BackendError> {
        Err(unsupported())
    }
}

// ---------------------------------------------------------------------------------------------
// Side (a): creates through the HTTP API.

/// Runs one creates phase on a fresh control-plane database; returns it and what the workflow
/// histories of its creates say.
async fn creates_phase(
    options: Options,
    instances: &InstanceClusters,
    metrics: &metrics_exporter_prometheus::PrometheusHandle,
) -> BenchResult<(Phase, Histories)> {
    let database = BenchDatabase::fresh().await?;
    let backend: Arc<dyn Backend> = Arc::new(NoopBackend {
        slots: instances.slots.clone(),
        version: instances.version.clone(),
        deployed: Mutex::default(),
    });
    let metadata = MetadataStore::connect(&database.url, 10).await?;
    metadata.migrate().await?;
    let secret_key = SecretKey::generate();
    let deps = ActivityDeps {
        backend: backend.clone(),
        metadata: metadata.clone(),
        secret_key: secret_key.clone(),
        step_delay: None,
    };
    // The server's defaults (`toygres serve` without settings).
    let workflows = Workflows::start(
        open_store(&database.url).await?,
        deps,
        &RuntimeSettings::default(),
    )
    .await;
    let plane = Arc::new(ControlPlane {
        metadata: metadata.clone(),
        client: workflows.client.clone(),
        backend: backend.clone(),
        backend_kind: backend.kind().to_string(),
        versions: backend.versions(),
        secret_key,
        create_limits: CreateLimits::default(),
        delete_limits: DeleteLimits::default(),
        change_limits: ChangeLimits::default(),
        catalogs: Default::default(),
        backups: None,
        health: HealthSettings {
            // Every create starts its monitor (that is measured); its first check would come
            // after this, outside the measurement.
            interval_ms: 3_600_000,
            ..HealthSettings::default()
        },
        drift_interval: Duration::from_secs(3600),
        drift_grace: Duration::from_secs(3600),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let app = api::router(AppState {
        plane,
        metrics: metrics.clone(),
        authentication: Authentication::Disabled,
        scheme: Scheme::Http,
    });
    let (stop_http, stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(toygres_server::http::server::serve(
        listener,
        None,
        app,
        async move {
            let _ = stopped.await;
        },
    ));
    let http_client = reqwest::Client::new();
    let api = Api {
        client: http_client,
        base,
        poll: options.poll,
        wait: options.wait,
    };

    // Warm-up: one create per slot (first logins, prepared statements, the roles made once).
    let warm_up = drive(options.concurrency, options.concurrency, |slot, index| {
        let api = api.clone();
        async move { api.create(&format!("s{slot}-w{index}")).await }
    })
    .await;
    let warm_up = match warm_up {
        Ok(warm_up) => warm_up,
        Err(error) => {
            let _ = stop_http.send(());
            workflows.shutdown(Duration::from_secs(1)).await;
            return Err(error);
        }
    };
    drop(warm_up);

    let outcome = measure(&database, Some(instances), || {
        drive(options.items, options.concurrency, |slot, index| {
            let api = api.clone();
            async move { api.create(&format!("s{slot}-n{index}")).await }
        })
    })
    .await;
    let outcome = match outcome {
        Ok(mut phase) => {
            // A running create (held in wait_ready), polled alone.
            let held = format!("s0{HELD_SUFFIX}");
            let operation = api.start_create(&held).await?;
            let idle = measure(&database, None, || async {
                Ok(Driven {
                    latencies: Vec::new(),
                    polls: 0,
                })
            })
            .await?;
            let calibration = measure(&database, None, || async {
                let mut latencies = Vec::with_capacity(CALIBRATION_POLLS);
                for _ in 0..CALIBRATION_POLLS {
                    let started = Instant::now();
                    api.poll_once(&held, &operation).await?;
                    latencies.push(started.elapsed());
                }
                Ok(Driven {
                    latencies,
                    polls: 0,
                })
            })
            .await?;
            phase.poll_cost = Some(PollCost::of(&calibration, &idle));
            Ok(phase)
        }
        Err(error) => Err(error),
    };
    let histories = match &outcome {
        Ok(_) => Histories::read(&database.url, &metadata).await,
        Err(_) => Ok(Histories::default()),
    };
    let _ = stop_http.send(());
    let _ = http.await;
    workflows.shutdown(Duration::from_secs(2)).await;
    metadata.pool().close().await;
    database.drop_it().await;
    Ok((outcome?, histories?))
}

/// The API as the driver uses it.
#[derive(Clone)]
struct Api {
    client: reqwest::Client,
    base: String,
    poll: Duration,
    wait: WaitBy,
}

impl Api {
    /// `POST /instances`, then polls until the create succeeded; returns the polls.
    async fn create(&self, name: &str) -> BenchResult<u64> {
        let operation = self.start_create(name).await?;
        let mut polls = 0;
        let mut pause = Backoff::new(self.poll);
        loop {
            tokio::time::sleep(pause.next()).await;
            polls += 1;
            if self.poll_once(name, &operation).await? {
                return Ok(polls);
            }
        }
    }

    /// One poll of a create: whether it succeeded (an error when it failed).
    async fn poll_once(&self, name: &str, operation: &str) -> BenchResult<bool> {
        match self.wait {
            WaitBy::Instance => {
                let view: serde_json::Value = self
                    .client
                    .get(format!("{}/instances/{name}", self.base))
                    .send()
                    .await?
                    .json()
                    .await?;
                match view["state"].as_str() {
                    Some("running") => Ok(true),
                    Some("creating") => Ok(false),
                    _ => Err(format!("create of {name}: {view}").into()),
                }
            }
            WaitBy::Operation => {
                let view = self.operation_status(operation).await?;
                match view["status"].as_str() {
                    Some("succeeded") => Ok(true),
                    Some("pending" | "running") => Ok(false),
                    _ => Err(format!("create of {name} ended: {view}").into()),
                }
            }
        }
    }

    /// `POST /instances`; returns the operation id.
    async fn start_create(&self, name: &str) -> BenchResult<String> {
        let response = self
            .client
            .post(format!("{}/instances", self.base))
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await?;
        let status = response.status();
        let body: serde_json::Value = response.json().await?;
        if status != reqwest::StatusCode::ACCEPTED {
            return Err(format!("POST /instances {name}: {status} {body}").into());
        }
        Ok(body["operation"]["id"]
            .as_str()
            .ok_or_else(|| format!("POST /instances {name}: no operation id in {body}"))?
            .to_string())
    }

    /// `GET /operations/{id}`.
    async fn operation_status(&self, operation: &str) -> BenchResult<serde_json::Value> {
        Ok(self
            .client
            .get(format!("{}/operations/{operation}", self.base))
            .send()
            .await?
            .json()
            .await?)
    }
}

// ---------------------------------------------------------------------------------------------
// Side (b): trivial orchestrations on raw Duroxide + duroxide-pg.

const TRIVIAL_ORCHESTRATION: &str = "bench::orchestration::trivial";
const NOOP_ACTIVITY: &str = "bench::activity::noop";

/// One orchestration that schedules one activity that returns its input at once.
async fn trivial_phase(options: Options, side: Side) -> BenchResult<Phase> {
    let database = BenchDatabase::fresh().await?;
    let provider = PostgresProvider::new_with_schema(&database.url, Some("bench_duroxide"))
        .await
        .map_err(|error| format!("opening duroxide-pg: {error}"))?;
    let store: Arc<dyn duroxide::providers::Provider> = match side {
        Side::RawWaking => Arc::new(WakingStore::new(Arc::new(provider))),
        _ => Arc::new(provider),
    };
    let activities = ActivityRegistry::builder()
        .register(
            NOOP_ACTIVITY,
            |_ctx: ActivityContext, input: String| async move { Ok::<_, String>(input) },
        )
        .build();
    let orchestrations = OrchestrationRegistry::builder()
        .register(
            TRIVIAL_ORCHESTRATION,
            |ctx: OrchestrationContext, input: String| async move {
                ctx.schedule_activity(NOOP_ACTIVITY, input).await
            },
        )
        .build();
    // The same runtime options as the control plane's.
    let runtime = Runtime::start_with_options(
        store.clone(),
        activities,
        orchestrations,
        RuntimeSettings::default().options(),
    )
    .await;
    let client = Client::new(store);
    let start = |slot: usize, index: String| {
        let client = client.clone();
        let poll = options.poll;
        async move {
            let id = format!("trivial-s{slot}-{index}");
            client
                .start_orchestration(id.as_str(), TRIVIAL_ORCHESTRATION, "{}")
                .await?;
            let mut polls = 0;
            let mut pause = Backoff::new(poll);
            loop {
                tokio::time::sleep(pause.next()).await;
                polls += 1;
                match client.get_orchestration_status(&id).await? {
                    OrchestrationStatus::Completed { .. } => return Ok(polls),
                    OrchestrationStatus::Failed { details, .. } => {
                        return Err(format!("{id} failed: {}", details.display_message()).into());
                    }
                    _ => {}
                }
            }
        }
    };
    let warm_up = drive(options.concurrency, options.concurrency, |slot, index| {
        start(slot, format!("w{index}"))
    })
    .await;
    let outcome = match warm_up {
        Ok(_) => {
            measure(&database, None, || {
                drive(options.items, options.concurrency, |slot, index| {
                    start(slot, format!("n{index}"))
                })
            })
            .await
        }
        Err(error) => Err(error),
    };
    runtime.shutdown(Some(2_000)).await;
    database.drop_it().await;
    outcome
}

// ---------------------------------------------------------------------------------------------
// Driving and measuring.

/// The pauses between a waiter's status polls: 5 ms, doubling, at most `limit` (the policy of
/// Duroxide's own `Client::wait_for_orchestration`, with its 100 ms limit by default).
struct Backoff {
    pause: Duration,
    limit: Duration,
}

impl Backoff {
    fn new(limit: Duration) -> Self {
        Self {
            pause: Duration::from_millis(5).min(limit),
            limit,
        }
    }

    fn next(&mut self) -> Duration {
        let pause = self.pause;
        self.pause = (self.pause * 2).min(self.limit);
        pause
    }
}

/// What [`drive`] returns: per item, its latency and the status polls it took.
struct Driven {
    latencies: Vec<Duration>,
    polls: u64,
}

/// Runs `items` items with `concurrency` tasks; task `slot` runs its items one after another.
async fn drive<F, Fut>(items: usize, concurrency: usize, item: F) -> BenchResult<Driven>
where
    F: Fn(usize, usize) -> Fut,
    Fut: std::future::Future<Output = BenchResult<u64>> + Send + 'static,
{
    let polls = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(items)));
    // Every item's future is made up front (cheap: nothing runs until awaited), so that the
    // tasks need no access to `item`.
    let mut queues: Vec<Vec<Fut>> = (0..concurrency).map(|_| Vec::new()).collect();
    for index in 0..items {
        let slot = index % concurrency;
        queues[slot].push(item(slot, index));
    }
    let mut tasks = Vec::new();
    for queue in queues {
        let polls = polls.clone();
        let latencies = latencies.clone();
        tasks.push(tokio::spawn(async move {
            for work in queue {
                let started = Instant::now();
                let taken = work.await?;
                polls.fetch_add(taken, Ordering::Relaxed);
                latencies
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(started.elapsed());
            }
            Ok::<(), BenchError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let latencies = std::mem::take(
        &mut *latencies
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    );
    Ok(Driven {
        latencies,
        polls: polls.load(Ordering::Relaxed),
    })
}

/// Measures `work`: its time, and the transactions and CPU around it (after a pause that lets
/// PostgreSQL's statistics of what came before settle, and another after it).
async fn measure<F, Fut>(
    database: &BenchDatabase,
    instances: Option<&InstanceClusters>,
    work: F,
) -> BenchResult<Phase>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = BenchResult<Driven>>,
{
    tokio::time::sleep(STATS_SETTLE).await;
    let before = Snapshot::take(database, instances).await?;
    let started = Instant::now();
    let driven = work().await?;
    let elapsed = started.elapsed();
    tokio::time::sleep(STATS_SETTLE).await;
    let after = Snapshot::take(database, instances).await?;
    let difference = |after: Option<Duration>, before: Option<Duration>| match (after, before) {
        (Some(after), Some(before)) => Some(after.saturating_sub(before)),
        _ => None,
    };
    Ok(Phase {
        items: driven.latencies.len(),
        elapsed,
        transactions: after.transactions.saturating_sub(before.transactions),
        cpu_process: after.process.saturating_sub(before.process),
        cpu_control_plane: difference(after.control_plane, before.control_plane),
        cpu_instances: difference(after.instances, before.instances),
        polls: driven.polls,
        latencies: driven.latencies,
        poll_cost: None,
    })
}

/// PostgreSQL backends publish their statistics at most once a second, and within a second of
/// going idle.
const STATS_SETTLE: Duration = Duration::from_millis(1_500);

/// Counters at one moment.
struct Snapshot {
    transactions: u64,
    process: Duration,
    control_plane: Option<Duration>,
    instances: Option<Duration>,
}

impl Snapshot {
    async fn take(
        database: &BenchDatabase,
        instances: Option<&InstanceClusters>,
    ) -> BenchResult<Self> {
        let transactions: i64 = sqlx::query_scalar(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&database.stats)
        .await?;
        Ok(Self {
            transactions: transactions.max(0) as u64,
            process: process_cpu(),
            control_plane: database.data_dir.as_deref().and_then(postmaster_cpu),
            instances: instances.and_then(InstanceClusters::cpu),
        })
    }
}

/// A fresh database on the tests' server for one phase.
struct BenchDatabase {
    url: String,
    name: String,
    /// One connection, for reading the statistics.
    stats: sqlx::PgPool,
    /// The server's data directory, when this process can read it (for its CPU).
    data_dir: Option<PathBuf>,
}

impl BenchDatabase {
    async fn fresh() -> BenchResult<Self> {
        let url = testkit::fresh_database().await?;
        let stats = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await?;
        let name: String = sqlx::query_scalar("SELECT current_database()")
            .fetch_one(&stats)
            .await?;
        let data_dir: Option<String> =
            sqlx::query_scalar("SELECT setting FROM pg_settings WHERE name = 'data_directory'")
                .fetch_optional(&stats)
                .await
                .ok()
                .flatten();
        Ok(Self {
            url,
            name,
            stats,
            data_dir: data_dir.map(PathBuf::from).filter(|dir| dir.exists()),
        })
    }

    /// Drops the database (best effort: it is a throwaway either way).
    async fn drop_it(self) {
        self.stats.close().await;
        let admin_url = self
            .url
            .replacen(&format!("/{}", self.name), "/postgres", 1);
        if let Ok(pool) = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&admin_url)
            .await
        {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&pool)
            .await;
            pool.close().await;
        }
    }
}

/// CPU time (user + system) of this process so far.
fn process_cpu() -> Duration {
    // SAFETY: getrusage writes into the struct it is given and reads nothing else.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let time = |value: libc::timeval| {
        Duration::from_secs(value.tv_sec.max(0) as u64)
            + Duration::from_micros(value.tv_usec.max(0) as u64)
    };
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// CPU time of the PostgreSQL server whose data directory is `data_dir`: its postmaster's own
/// and its reaped children's, plus its live children's.
fn postmaster_cpu(data_dir: &Path) -> Option<Duration> {
    let pid_file = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let postmaster: u32 = pid_file.lines().next()?.trim().parse().ok()?;
    let (_, own) = proc_stat(postmaster)?;
    let mut ticks = own;
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|pid| pid.parse().ok()) else {
            continue;
        };
        if let Some((parent, _)) = proc_stat(pid)
            && parent == postmaster
        {
            // A live child's own time (backends have no children of their own).
            ticks += child_own_ticks(pid).unwrap_or(0);
        }
    }
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some(Duration::from_secs_f64(ticks as f64 / per_second))
}

/// `(parent pid, utime + stime + cutime + cstime)` of process `pid`, in clock ticks.
fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let fields = stat_fields(pid)?;
    let number = |index: usize| {
        fields
            .get(index)
            .and_then(|field| field.parse::<u64>().ok())
    };
    // After the command: state, ppid, ... utime (index 11), stime, cutime, cstime.
    let parent = fields.get(1)?.parse().ok()?;
    Some((
        parent,
        number(11)? + number(12)? + number(13)? + number(14)?,
    ))
}

/// utime + stime of process `pid`, in clock ticks.
fn child_own_ticks(pid: u32) -> Option<u64> {
    let fields = stat_fields(pid)?;
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The fields of `/proc/<pid>/stat` after the command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn random_token() -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..20)
        .map(|_| char::from(b'a' + rng.random_range(0..26u8)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Where a create's time goes, from its workflow history.

/// What the histories of one phase's creates say.
#[derive(Debug, Default)]
struct Histories {
    creates: usize,
    /// Activities scheduled, by short name, summed over the creates.
    activities: BTreeMap<String, usize>,
    timers: usize,
    sub_orchestrations: usize,
    events: usize,
    /// Scheduled -> completed, by activity short name, in ms.
    activity_ms: BTreeMap<String, Vec<f64>>,
    /// From the operation's acceptance to the workflow's first turn, in ms.
    start_ms: Vec<f64>,
    /// The workflow, first turn to completion, in ms.
    workflow_ms: Vec<f64>,
    /// Orchestrator-queue items (timers included: they wait there until they are due) left
    /// once every create finished, and how many of them are not due yet.
    queued: Option<(i64, i64)>,
}

impl Histories {
    async fn read(url: &str, metadata: &MetadataStore) -> BenchResult<Self> {
        let provider =
            PostgresProvider::new_with_schema(url, Some(toygres_server::runtime::DUROXIDE_SCHEMA))
                .await
                .map_err(|error| format!("opening the store: {error}"))?;
        let client = Client::new(Arc::new(provider));
        let operations: Vec<(String, chrono::DateTime<chrono::Utc>)> = sqlx::query_as(
            "SELECT o.id, o.created_at FROM operations o JOIN instances i ON i.id = o.instance_id \
             WHERE o.kind = 'create' AND i.name LIKE 's%-n%'",
        )
        .fetch_all(metadata.pool())
        .await?;
        let queued = sqlx::query_as(&format!(
            "SELECT count(*), count(*) FILTER (WHERE visible_at > now()) FROM {}.orchestrator_queue",
            toygres_server::runtime::DUROXIDE_SCHEMA
        ))
        .fetch_one(metadata.pool())
        .await
        .ok();
        let mut histories = Self {
            queued,
            ..Self::default()
        };
        for (id, accepted) in operations {
            let events = client
                .read_execution_history(&id, 1)
                .await
                .map_err(|error| format!("history of {id}: {error}"))?;
            histories.add(&events, accepted.timestamp_millis() as f64);
        }
        Ok(histories)
    }

    fn add(&mut self, events: &[duroxide::Event], accepted_ms: f64) {
        self.creates += 1;
        self.events += events.len();
        let mut scheduled: BTreeMap<u64, (String, u64)> = BTreeMap::new();
        let mut started = None;
        for event in events {
            match &event.kind {
                EventKind::OrchestrationStarted { .. } => {
                    started = Some(event.timestamp_ms);
                    self.start_ms.push(event.timestamp_ms as f64 - accepted_ms);
                }
                EventKind::OrchestrationCompleted { .. } => {
                    if let Some(started) = started {
                        self.workflow_ms
                            .push(event.timestamp_ms.saturating_sub(started) as f64);
                    }
                }
                EventKind::ActivityScheduled { name, .. } => {
                    let short = name.rsplit("::").next().unwrap_or(name).to_string();
                    *self.activities.entry(short.clone()).or_default() += 1;
                    scheduled.insert(event.event_id, (short, event.timestamp_ms));
                }
                EventKind::ActivityCompleted { .. } => {
                    if let Some((name, at)) = event
                        .source_event_id
                        .and_then(|source| scheduled.get(&source))
                    {
                        self.activity_ms
                            .entry(name.clone())
                            .or_default()
                            .push(event.timestamp_ms.saturating_sub(*at) as f64);
                    }
                }
                EventKind::TimerCreated { .. } => self.timers += 1,
                EventKind::SubOrchestrationScheduled { .. }
                | EventKind::OrchestrationChained { .. } => self.sub_orchestrations += 1,
                _ => {}
            }
        }
    }

    fn print(&self) {
        if self.creates == 0 {
            return;
        }
        let per = |count: usize| count as f64 / self.creates as f64;
        println!();
        println!(
            "per create (last round, {} creates): {:.1} history events, {:.1} activities, {:.1} timers, {:.1} workflows started",
            self.creates,
            per(self.events),
            per(self.activities.values().sum()),
            per(self.timers),
            per(self.sub_orchestrations),
        );
        println!(
            "accepted -> first turn: p50 {:.0} ms; first turn -> completed: p50 {:.0} ms",
            median_f64(self.start_ms.clone()),
            median_f64(self.workflow_ms.clone()),
        );
        if let Some((queued, later)) = self.queued {
            println!(
                "orchestrator-queue items left after the phase (warm-up and held create included): {queued}, {later} of them timers not due yet"
            );
        }
        for (name, count) in &self.activities {
            let times = self.activity_ms.get(name).cloned().unwrap_or_default();
            println!(
                "  {name:<24} {:.1} per create, scheduled -> completed p50 {:.0} ms",
                per(*count),
                median_f64(times),
            );
        }
    }
}
