//! A backend that injects faults into a real one, for tests and chaos drills: a chosen step
//! fails N times, fails always, hangs, or is slowed down. Enabled with `TOYGRES_FAULTS`, e.g.
//! `deploy=fail:2;readiness=delay:500;delete=hang`. Never set it in production.

use super::{
    Backend, BackendError, DeployOutcome, DeploySpec, Endpoint, InstanceRef, InstanceStream,
    MissingPermission, OwnedInstance, PlacementError, Readiness,
};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The backend calls faults can be attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultPoint {
    /// [`Backend::deploy`].
    Deploy,
    /// [`Backend::readiness`].
    Readiness,
    /// [`Backend::endpoint`].
    Endpoint,
    /// [`Backend::delete`].
    Delete,
    /// [`Backend::list_owned`].
    ListOwned,
    /// [`Backend::stop`].
    Stop,
    /// [`Backend::start`].
    Start,
    /// [`Backend::restart`].
    Restart,
    /// [`Backend::resize`].
    Resize,
}

impl FaultPoint {
    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "deploy" => FaultPoint::Deploy,
            "readiness" => FaultPoint::Readiness,
            "endpoint" => FaultPoint::Endpoint,
            "delete" => FaultPoint::Delete,
            "list_owned" => FaultPoint::ListOwned,
            "stop" => FaultPoint::Stop,
            "start" => FaultPoint::Start,
            "restart" => FaultPoint::Restart,
            "resize" => FaultPoint::Resize,
            _ => return None,
        })
    }
}

/// What happens at a fault point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The first N calls fail with a retryable error, then calls go through.
    FailTimes(u32),
    /// Every call fails with a retryable error.
    FailAlways,
    /// Every call waits forever (until the caller gives up).
    Hang,
    /// Every call waits this long, then goes through.
    Delay(Duration),
}

/// Faults by point, parsed from `point=fault;point=fault`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FaultPlan {
    faults: HashMap<FaultPoint, Fault>,
}

/// Why a fault plan could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid fault '{0}': expected POINT=fail|fail:N|hang|delay:MS with POINT one of deploy, readiness, endpoint, delete, list_owned, stop, start, restart, resize"
)]
pub struct FaultPlanError(String);

impl FaultPlan {
    /// Parses `deploy=fail:2;delete=hang` (empty means no faults).
    pub fn parse(raw: &str) -> Result<Self, FaultPlanError> {
        let mut faults = HashMap::new();
        for item in raw
            .split(';')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            let error = || FaultPlanError(item.to_string());
            let (point, fault) = item.split_once('=').ok_or_else(error)?;
            let point = FaultPoint::parse(point.trim()).ok_or_else(error)?;
            let fault = match fault.trim().split_once(':') {
                None if fault.trim() == "fail" => Fault::FailAlways,
                None if fault.trim() == "hang" => Fault::Hang,
                Some(("fail", times)) => Fault::FailTimes(times.parse().map_err(|_| error())?),
                Some(("delay", ms)) => {
                    Fault::Delay(Duration::from_millis(ms.parse().map_err(|_| error())?))
                }
                _ => return Err(error()),
            };
            faults.insert(point, fault);
        }
        Ok(Self { faults })
    }

    /// Whether the plan injects nothing.
    pub fn is_empty(&self) -> bool {
        self.faults.is_empty()
    }
}

/// Wraps a real backend and applies a [`FaultPlan`]; counts the calls of each method (tests
/// read them with [`FaultyBackend::calls`]).
#[derive(Debug)]
pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    plan: FaultPlan,
    calls: HashMap<FaultPoint, AtomicU32>,
    counted: std::sync::Mutex<HashMap<&'static str, u32>>,
}

impl FaultyBackend {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Backend>, plan: FaultPlan) -> Self {
        let calls = plan
            .faults
            .keys()
            .map(|point| (*point, AtomicU32::new(0)))
            .collect();
        Self {
            inner,
            plan,
            calls,
            counted: Default::default(),
        }
    }

    /// How many times `method` (`readiness`, `wait_ready`, `deploy`, ...) was called.
    pub fn calls(&self, method: &str) -> u32 {
        self.counted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(method)
            .copied()
            .unwrap_or(0)
    }

    fn count(&self, method: &'static str) {
        *self
            .counted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .entry(method)
            .or_default() += 1;
    }

    /// Applies the fault of `point`, if any, to this call.
    async fn inject(&self, point: FaultPoint) -> Result<(), BackendError> {
        let Some(fault) = self.plan.faults.get(&point) else {
            return Ok(());
        };
        let call = self
            .calls
            .get(&point)
            .map_or(0, |count| count.fetch_add(1, Ordering::SeqCst));
        match *fault {
            Fault::FailTimes(times) if call < times => Err(BackendError::Transient(format!(
                "injected fault: {point:?} failure {} of {times}",
                call + 1
            ))),
            Fault::FailTimes(_) => Ok(()),
            Fault::FailAlways => Err(BackendError::Transient(format!(
                "injected fault: {point:?} always fails"
            ))),
            Fault::Hang => std::future::pending().await,
            Fault::Delay(delay) => {
                tokio::time::sleep(delay).await;
                Ok(())
            }
        }
    }
}

#[async_trait]
impl Backend for FaultyBackend {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn versions(&self) -> Vec<String> {
        self.inner.versions()
    }

    fn default_namespace(&self) -> &str {
        self.inner.default_namespace()
    }

    fn allowed_namespaces(&self) -> Vec<String> {
        self.inner.allowed_namespaces()
    }

    async fn check_placement(&self, namespace: &str) -> Result<(), PlacementError> {
        self.inner.check_placement(namespace).await
    }

    async fn missing_permissions(&self) -> Result<Vec<MissingPermission>, BackendError> {
        self.inner.missing_permissions().await
    }

    async fn deploy(&self, spec: &DeploySpec) -> Result<DeployOutcome, BackendError> {
        self.count("deploy");
        self.inject(FaultPoint::Deploy).await?;
        self.inner.deploy(spec).await
    }

    async fn readiness(&self, instance: InstanceRef<'_>) -> Result<Readiness, BackendError> {
        self.count("readiness");
        self.inject(FaultPoint::Readiness).await?;
        self.inner.readiness(instance).await
    }

    async fn endpoint(&self, instance: InstanceRef<'_>) -> Result<Endpoint, BackendError> {
        self.count("endpoint");
        self.inject(FaultPoint::Endpoint).await?;
        self.inner.endpoint(instance).await
    }

    async fn dns_name(&self, instance: InstanceRef<'_>) -> Result<Option<String>, BackendError> {
        self.count("dns_name");
        self.inner.dns_name(instance).await
    }

    async fn wait_ready(
        &self,
        instance: InstanceRef<'_>,
        limit: std::time::Duration,
    ) -> Result<Readiness, BackendError> {
        self.count("wait_ready");
        self.inject(FaultPoint::Readiness).await?;
        self.inner.wait_ready(instance, limit).await
    }

    async fn delete(&self, instance: InstanceRef<'_>, uid: &str) -> Result<(), BackendError> {
        self.count("delete");
        self.inject(FaultPoint::Delete).await?;
        self.inner.delete(instance, uid).await
    }

    async fn list_owned(&self) -> Result<Vec<OwnedInstance>, BackendError> {
        self.count("list_owned");
        self.inject(FaultPoint::ListOwned).await?;
        self.inner.list_owned().await
    }

    async fn list_running(&self) -> Result<Option<Vec<OwnedInstance>>, BackendError> {
        self.count("list_running");
        self.inner.list_running().await
    }

    async fn dial(
        &self,
        instance: InstanceRef<'_>,
        endpoint: &Endpoint,
    ) -> Result<InstanceStream, BackendError> {
        self.inner.dial(instance, endpoint).await
    }

    async fn stop(&self, instance: InstanceRef<'_>, uid: &str) -> Result<(), BackendError> {
        self.count("stop");
        self.inject(FaultPoint::Stop).await?;
        self.inner.stop(instance, uid).await
    }

    async fn start(&self, instance: InstanceRef<'_>, uid: &str) -> Result<(), BackendError> {
        self.count("start");
        self.inject(FaultPoint::Start).await?;
        self.inner.start(instance, uid).await
    }

    async fn restart(
        &self,
        instance: InstanceRef<'_>,
        uid: &str,
        parameters: Option<&BTreeMap<String, String>>,
    ) -> Result<(), BackendError> {
        self.count("restart");
        self.inject(FaultPoint::Restart).await?;
        self.inner.restart(instance, uid, parameters).await
    }

    fn backups(&self) -> Option<&dyn crate::backup::agent::InstanceBackups> {
        self.inner.backups()
    }

    fn warm_pool(&self) -> Option<&dyn super::WarmPool> {
        self.inner.warm_pool()
    }

    async fn deploy_restored(
        &self,
        spec: &DeploySpec,
        source: &crate::backup::agent::RestoreSource,
    ) -> Result<DeployOutcome, BackendError> {
        self.count("deploy_restored");
        self.inject(FaultPoint::Deploy).await?;
        self.inner.deploy_restored(spec, source).await
    }

    async fn resize(
        &self,
        instance: InstanceRef<'_>,
        uid: &str,
        storage_gb: u32,
    ) -> Result<(), BackendError> {
        self.count("resize");
        self.inject(FaultPoint::Resize).await?;
        self.inner.resize(instance, uid, storage_gb).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validation::InstanceName;

    #[test]
    fn plans_parse() {
        let plan =
            FaultPlan::parse("deploy=fail:2; readiness=delay:50;delete=hang;endpoint=fail").ok();
        let faults = plan.map(|plan| plan.faults).unwrap_or_default();
        assert_eq!(faults.get(&FaultPoint::Deploy), Some(&Fault::FailTimes(2)));
        assert_eq!(
            faults.get(&FaultPoint::Readiness),
            Some(&Fault::Delay(Duration::from_millis(50)))
        );
        assert_eq!(faults.get(&FaultPoint::Delete), Some(&Fault::Hang));
        assert_eq!(faults.get(&FaultPoint::Endpoint), Some(&Fault::FailAlways));
        assert!(FaultPlan::parse("").is_ok_and(|plan| plan.is_empty()));
        for bad in [
            "deploy",
            "nowhere=fail",
            "deploy=explode",
            "deploy=fail:x",
            "deploy=delay",
        ] {
            assert!(FaultPlan::parse(bad).is_err(), "{bad}");
        }
    }

    #[derive(Debug)]
    struct Counting;

    #[async_trait]
    impl Backend for Counting {
        fn kind(&self) -> &'static str {
            "test"
        }
        fn versions(&self) -> Vec<String> {
            vec!["15".into()]
        }
        async fn deploy(&self, _spec: &DeploySpec) -> Result<DeployOutcome, BackendError> {
            Ok(DeployOutcome::Created)
        }
        async fn readiness(&self, _instance: InstanceRef<'_>) -> Result<Readiness, BackendError> {
            Ok(Readiness::Ready)
        }
        async fn endpoint(&self, _instance: InstanceRef<'_>) -> Result<Endpoint, BackendError> {
            Ok(Endpoint {
                host: "h".into(),
                port: 1,
            })
        }
        async fn delete(&self, _instance: InstanceRef<'_>, _uid: &str) -> Result<(), BackendError> {
            Ok(())
        }
        async fn list_owned(&self) -> Result<Vec<OwnedInstance>, BackendError> {
            Ok(Vec::new())
        }
        async fn stop(&self, _instance: InstanceRef<'_>, _uid: &str) -> Result<(), BackendError> {
            Ok(())
        }
        async fn start(&self, _instance: InstanceRef<'_>, _uid: &str) -> Result<(), BackendError> {
            Ok(())
        }
        async fn restart(
            &self,
            _instance: InstanceRef<'_>,
            _uid: &str,
            _parameters: Option<&BTreeMap<String, String>>,
        ) -> Result<(), BackendError> {
            Ok(())
        }
        async fn resize(
            &self,
            _instance: InstanceRef<'_>,
            _uid: &str,
            _storage_gb: u32,
        ) -> Result<(), BackendError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn faults_apply_as_planned() -> Result<(), Box<dyn std::error::Error>> {
        let plan = FaultPlan::parse("readiness=fail:2;delete=fail;endpoint=hang;restart=fail:1")?;
        let backend = FaultyBackend::new(Arc::new(Counting), plan);
        let name = InstanceName::parse("x")?;
        let name = InstanceRef::in_default(&name);
        assert!(backend.readiness(name).await.is_err());
        assert!(backend.readiness(name).await.is_err());
        assert_eq!(
            backend.readiness(name).await?,
            Readiness::Ready,
            "passes after two failures"
        );
        assert!(
            backend
                .delete(name, "ins_x")
                .await
                .is_err_and(|error| error.is_retryable())
        );
        assert!(backend.delete(name, "ins_x").await.is_err());
        let hung = tokio::time::timeout(Duration::from_millis(50), backend.endpoint(name)).await;
        assert!(hung.is_err(), "a hang never answers");
        assert!(
            backend.list_owned().await?.is_empty(),
            "points without faults pass through"
        );
        assert!(backend.restart(name, "ins_x", None).await.is_err());
        backend.restart(name, "ins_x", None).await?;
        backend.stop(name, "ins_x").await?;
        Ok(())
    }
}
