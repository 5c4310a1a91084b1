//! (being written)

use std::sync::Arc;

use apalis::prelude::Monitor;
use heimdall_domain::Core;

use crate::queue::Queue;

/// Register this module's workers with the monitor.
pub fn register(monitor: Monitor, _core: &Arc<Core>, _queue: &Queue) -> Monitor {
    monitor
}
