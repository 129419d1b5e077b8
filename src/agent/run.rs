//! `sluicegate agent`: run an agent until SIGTERM/SIGINT, serving metrics and reloading the
//! configuration file when it changes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::lifecycle::{Agent, AgentError};
use super::summary;
use crate::component::SinkType;
use crate::config::SystemProps;
use crate::metrics::http::{monitoring_options, MetricsServer};
use crate::metrics::MetricsRegistry;

/// Options of `sluicegate agent`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// `-f`: the configuration file.
    pub conf_file: PathBuf,
    /// `-n`: the agent name.
    pub name: String,
    /// `-D` properties.
    pub props: SystemProps,
    /// How often the file is checked for changes (`None`: never, Flume's `--no-reload-conf`).
    pub reload_interval: Option<Duration>,
    /// How often a one-line summary per flow is logged (`None`: never; see
    /// [`super::summary`]).
    pub summary_interval: Option<Duration>,
}

/// Why `run` ended badly.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The agent could not start.
    #[error(transparent)]
    Agent(#[from] AgentError),
    /// The monitoring settings are wrong.
    #[error("monitoring: {0}")]
    Monitoring(String),
    /// An I/O problem (runtime, metrics port, signals).
    #[error("{what}: {error}")]
    Io {
        /// What was being done (`binding the metrics port 0.0.0.0:34545`).
        what: String,
        /// The operating system's error.
        error: std::io::Error,
    },
}

fn file_stamp(path: &std::path::Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

/// The first lines of a started agent: where its output goes and how to watch it.
fn announce(agent: &Agent, opts: &RunOptions, metrics: Option<SocketAddr>) {
    for s in &agent.config().sinks {
        if s.sink_type == SinkType::FileRoll {
            if let Some(dir) = s.context.get("sink.directory") {
                tracing::info!("output: sink {} writes events to files in {dir}", s.name);
            }
        }
        if s.sink_type == SinkType::Hdfs {
            if let Some(path) = s.context.get("hdfs.path") {
                tracing::info!(
                    "output: sink {} writes events to files under {path}",
                    s.name
                );
            }
        }
    }
    match opts.summary_interval {
        Some(every) => tracing::info!(
            "watch it: a summary line per flow every {every:?} (-D{}=N to change, --no-summary to turn off)",
            summary::INTERVAL_PROPERTY
        ),
        None => tracing::info!("periodic summary off (--no-summary)"),
    }
    match metrics {
        Some(addr) => {
            // A wildcard bind is reached on the loopback address.
            let mut addr = addr;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            tracing::info!(
                "metrics: curl -s http://{addr}/metrics, or watch live: sluicegate top --url http://{addr}"
            )
        }
        None => tracing::info!(
            "metrics: not served; add -Dflume.monitoring.type=http -Dflume.monitoring.port=34545 for /metrics"
        ),
    }
    if let Some(addr) = metrics {
        tracing::info!("status page: open http://{addr}/ in a browser for a live view");
    }
}

/// Runs the agent until a termination signal; returns after a graceful stop.
pub fn run(opts: RunOptions) -> Result<(), RunError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
                .max(2),
        )
        .thread_name("sluicegate-io")
        .enable_all()
        .build()
        .map_err(|error| RunError::Io {
            what: "starting the runtime".into(),
            error,
        })?;
    let registry = MetricsRegistry::new();
    let monitoring =
        monitoring_options(opts.props.iter()).map_err(|e| RunError::Monitoring(e.to_string()))?;
    let mut metrics_addr = None;
    let (stop_metrics, metrics_stopped) = tokio::sync::oneshot::channel::<()>();
    let metrics_task = match monitoring {
        Some(m) => {
            let server = runtime
                .block_on(MetricsServer::bind(m.addr(), registry.clone()))
                .map_err(|error| RunError::Io {
                    what: format!("binding the metrics port {}", m.addr()),
                    error,
                })?;
            // The bound address: with flume.monitoring.port=0 the system picked the port.
            let bound = server.local_addr().unwrap_or(m.addr());
            metrics_addr = Some(bound);
            tracing::info!(addr = %bound, "metrics: GET /metrics (Flume JSON), /metrics/prometheus");
            Some(runtime.spawn(async move {
                let _ = server
                    .run(async {
                        let _ = metrics_stopped.await;
                    })
                    .await;
            }))
        }
        None => None,
    };

    let mut agent = Agent::start(
        &opts.conf_file,
        &opts.name,
        opts.props.clone(),
        runtime.handle().clone(),
        registry,
    )?;
    let mut stamp = file_stamp(&opts.conf_file);
    announce(&agent, &opts, metrics_addr);

    let mut sigterm = runtime
        .block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        })
        .map_err(|error| RunError::Io {
            what: "installing the SIGTERM handler".into(),
            error,
        })?;
    let far = Duration::from_secs(3600 * 24 * 365);
    let mut next_reload = Instant::now() + opts.reload_interval.unwrap_or(far);
    let mut next_summary = Instant::now() + opts.summary_interval.unwrap_or(far);
    let mut last = (Instant::now(), summary::snapshot(agent.registry()));
    loop {
        let wake = next_reload.min(next_summary);
        let signalled = runtime.block_on(async {
            tokio::select! {
                _ = sigterm.recv() => Some("SIGTERM"),
                _ = tokio::signal::ctrl_c() => Some("SIGINT"),
                _ = tokio::time::sleep_until(wake.into()) => None,
            }
        });
        if let Some(sig) = signalled {
            tracing::info!(
                signal = sig,
                "shutting down: stopping sources, draining sinks, closing channels"
            );
            break;
        }
        if let Some(every) = opts.summary_interval {
            if Instant::now() >= next_summary {
                let snap = summary::snapshot(agent.registry());
                for line in summary::lines(agent.config(), &last.1, &snap, last.0.elapsed()) {
                    tracing::info!("{line}");
                }
                last = (Instant::now(), snap);
                next_summary = Instant::now() + every;
            }
        }
        if Instant::now() < next_reload {
            continue;
        }
        next_reload = Instant::now() + opts.reload_interval.unwrap_or(far);
        let now = file_stamp(&opts.conf_file);
        if now.is_some() && now != stamp {
            stamp = now;
            tracing::info!(file = %opts.conf_file.display(), "configuration file changed; reloading");
            if let Err(e) = agent.reload() {
                tracing::error!("reload refused, the agent keeps its current configuration:\n{e}");
            }
        }
    }
    agent.stop();
    drop(agent);
    let _ = stop_metrics.send(());
    if let Some(t) = metrics_task {
        let _ = runtime.block_on(t);
    }
    runtime.shutdown_timeout(Duration::from_secs(5));
    tracing::info!("agent stopped");
    Ok(())
}
