//! The routing table: what each path serves.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use crate::app::AppHandler;
use crate::channel::Channel;
use crate::config::check_path;
use crate::error::{Error, Result};
use crate::hub::Hub;
use crate::reply::RouteHandler;
use crate::stream::StreamHandler;

/// What a path serves.
#[derive(Clone)]
pub(crate) enum Route {
    Channel(Channel),
    Stream(Arc<dyn StreamHandler>),
    Handler(Arc<dyn RouteHandler>),
    Page(PathBuf),
    /// The Mercure hub: subscriptions to topics and publishes.
    Hub(Arc<Hub>),
}

/// The routing table: exact paths, then directory prefixes (longest first),
/// then the mounted application, if any, for everything else.
#[derive(Default)]
pub(crate) struct Routes {
    exact: HashMap<String, Route>,
    directories: Vec<(String, PathBuf)>,
    app: Option<Arc<dyn AppHandler>>,
    /// Channels no path serves: reached only by hand-over and listeners.
    unrouted: HashMap<String, Channel>,
}

pub(crate) enum Target {
    Route(Route),
    File { dir: PathBuf, relative: String },
    App(Arc<dyn AppHandler>),
}

impl Routes {
    pub(crate) fn insert(&mut self, path: &str, route: Route) -> Result<()> {
        self.check_free(path)?;
        self.exact.insert(path.to_owned(), route);
        Ok(())
    }

    /// Whether `name` is a valid path that no route or channel has taken.
    fn check_free(&self, name: &str) -> Result<()> {
        check_path(name)?;
        if self.exact.contains_key(name) || self.unrouted.contains_key(name) {
            return Err(Error::RouteExists(name.to_owned()));
        }
        Ok(())
    }

    pub(crate) fn insert_directory(&mut self, prefix: &str, dir: PathBuf) -> Result<()> {
        check_path(prefix)?;
        let prefix = if prefix.ends_with('/') {
            prefix.to_owned()
        } else {
            format!("{prefix}/")
        };
        if self
            .directories
            .iter()
            .any(|(existing, _)| *existing == prefix)
        {
            return Err(Error::RouteExists(prefix));
        }
        self.directories.push((prefix, dir));
        self.directories
            .sort_by(|(a, _), (b, _)| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        Ok(())
    }

    /// Keeps `channel` (named `name`, a path that is not served) with the
    /// others, for stats and shutdown.
    pub(crate) fn insert_unrouted(&mut self, name: &str, channel: Channel) -> Result<()> {
        self.check_free(name)?;
        self.unrouted.insert(name.to_owned(), channel);
        Ok(())
    }

    pub(crate) fn mount(&mut self, app: Arc<dyn AppHandler>) -> Result<()> {
        if self.app.is_some() {
            return Err(Error::AlreadyMounted);
        }
        self.app = Some(app);
        Ok(())
    }

    /// The mounted application, if any.
    pub(crate) fn app(&self) -> Option<Arc<dyn AppHandler>> {
        self.app.clone()
    }

    /// The route registered at exactly `path`.
    pub(crate) fn exact(&self, path: &str) -> Option<Route> {
        self.exact.get(path).cloned()
    }

    /// Every channel, routed or not, and the hub's.
    pub(crate) fn channels(&self) -> impl Iterator<Item = &Channel> {
        self.exact
            .values()
            .filter_map(|route| match route {
                Route::Channel(channel) => Some(channel),
                Route::Hub(hub) => Some(hub.channel()),
                _ => None,
            })
            .chain(self.unrouted.values())
    }

    /// The host's channel named `path`, routed or not (not the hub's).
    pub(crate) fn channel_at(&self, path: &str) -> Option<Channel> {
        match self.exact.get(path) {
            Some(Route::Channel(channel)) => Some(channel.clone()),
            Some(_) => None,
            None => self.unrouted.get(path).cloned(),
        }
    }

    pub(crate) fn find(&self, path: &str) -> Option<Target> {
        if let Some(route) = self.exact.get(path) {
            return Some(Target::Route(route.clone()));
        }
        self.directories
            .iter()
            .find_map(|(prefix, dir)| {
                path.strip_prefix(prefix.as_str())
                    .map(|relative| Target::File {
                        dir: dir.clone(),
                        relative: relative.to_owned(),
                    })
            })
            .or_else(|| self.app.clone().map(Target::App))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_paths_are_checked() {
        let mut routes = Routes::default();
        for bad in ["", "stream", "/a?b", "/a b", "/a\nb"] {
            assert!(matches!(
                routes.insert(bad, Route::Page(PathBuf::new())),
                Err(Error::InvalidPath { .. })
            ));
        }
        routes.insert("/a", Route::Page(PathBuf::new())).unwrap();
        assert!(matches!(
            routes.insert("/a", Route::Page(PathBuf::new())),
            Err(Error::RouteExists(_))
        ));
    }

    #[test]
    fn longest_directory_prefix_wins() {
        let mut routes = Routes::default();
        routes
            .insert_directory("/", PathBuf::from("/root"))
            .unwrap();
        routes
            .insert_directory("/static", PathBuf::from("/static"))
            .unwrap();
        let Some(Target::File { dir, relative }) = routes.find("/static/app.js") else {
            panic!("no match");
        };
        assert_eq!(
            (dir, relative.as_str()),
            (PathBuf::from("/static"), "app.js")
        );
        let Some(Target::File { dir, .. }) = routes.find("/other.js") else {
            panic!("no match");
        };
        assert_eq!(dir, PathBuf::from("/root"));
    }
}
