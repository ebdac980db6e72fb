//! A Ruby project: its gems installed into the release's directory (`vendor/bundle`, so
//! each release has its own, as Heroku's buildpack keeps them), and Rails or a Rack app
//! served on `$PORT`, Rails in production with its database prepared once per release, as
//! `fly launch` sets Rails up.

use std::path::Path;

use super::detect::Plan;
use crate::error::Error;

/// Where Rails keeps the key to its encrypted credentials.
const MASTER_KEY: &str = "config/master.key";
/// [`MASTER_KEY`] as an ignore pattern at the app's root.
const MASTER_KEY_IGNORED: &str = "/config/master.key";
/// Where the build installs the gems, as an ignore pattern at the app's root.
const VENDOR_BUNDLE: &str = "/vendor/bundle/";

/// Adds what `dir`'s Ruby project needs to `plan`, if it is one.
pub(super) fn detect(dir: &Path, plan: &mut Plan) -> Result<(), Error> {
    if !dir.join("Gemfile").is_file() {
        return Ok(());
    }
    plan.sources.push("Gemfile".into());
    let rails = dir.join("bin/rails").is_file() && dir.join("config/application.rb").is_file();
    let mut build = String::from(
        "bundle config set --local path vendor/bundle && bundle config set --local without development:test && bundle install",
    );
    // A Rails app with a package.json installs its JavaScript too (as Fly's Rails
    // Dockerfile does), after its gems and before the assets are compiled.
    if let Some(javascript) = plan.build_command.take() {
        build = format!("{build} && {javascript}");
    }
    if rails && dir.join("app/assets").is_dir() {
        // As Fly's Rails Dockerfile does it: the real key is a secret the build has not.
        build.push_str(" && SECRET_KEY_BASE_DUMMY=1 bin/rails assets:precompile");
    }
    plan.build_command = Some(build);
    plan.left_out.push(VENDOR_BUNDLE);
    if !plan.processes.is_empty() {
        return Ok(());
    }
    let command = if rails {
        plan.env.insert("RAILS_ENV".into(), "production".into());
        // Logs to stdout, where `lakefly logs` reads them (the default before Rails 7.1
        // was a file under log/).
        plan.env.insert("RAILS_LOG_TO_STDOUT".into(), "1".into());
        plan.release_command
            .get_or_insert_with(|| "bin/rails db:prepare".into());
        // As `fly launch` does: the key to the app's credentials, which git (and so the
        // bundle) leaves out, becomes a secret.
        if dir.join(MASTER_KEY).is_file() {
            plan.secret_files
                .insert("RAILS_MASTER_KEY".into(), MASTER_KEY.into());
            // Were it not ignored by git, it would reach the daemon in the clear.
            plan.left_out.push(MASTER_KEY_IGNORED);
        }
        "bin/rails server -b 127.0.0.1 -p $PORT"
    } else if dir.join("config.ru").is_file() {
        "bundle exec rackup -o 127.0.0.1 -p $PORT"
    } else {
        return Ok(());
    };
    plan.processes.insert("app".into(), command.into());
    plan.http_group = Some("app".into());
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::launch::plan_for;

    #[test]
    fn rails_runs_in_production_and_prepares_its_database_once_per_release() {
        let plan = plan_for(&[
            ("Gemfile", "gem \"rails\"\n"),
            ("bin/rails", ""),
            ("config/application.rb", ""),
            ("config.ru", ""),
            ("app/assets/config/manifest.js", ""),
        ]);
        assert_eq!(
            plan.build_command.as_deref(),
            Some("bundle config set --local path vendor/bundle && bundle config set --local without development:test && bundle install && SECRET_KEY_BASE_DUMMY=1 bin/rails assets:precompile")
        );
        assert_eq!(
            plan.processes["app"],
            "bin/rails server -b 127.0.0.1 -p $PORT"
        );
        assert_eq!(
            plan.release_command.as_deref(),
            Some("bin/rails db:prepare")
        );
        assert_eq!(plan.env["RAILS_ENV"], "production");
        // No key in the directory: nothing to make a secret of.
        assert!(plan.secret_files.is_empty());
        let keyed = plan_for(&[
            ("Gemfile", "gem \"rails\"\n"),
            ("bin/rails", ""),
            ("config/application.rb", ""),
            ("config/master.key", "0123abcd\n"),
        ]);
        assert_eq!(keyed.secret_files["RAILS_MASTER_KEY"], "config/master.key");
        // Kept out of the bundle even where git does not ignore it.
        assert_eq!(keyed.left_out, ["/vendor/bundle/", "/config/master.key"]);
    }

    #[test]
    fn a_rails_app_with_a_package_json_installs_its_gems_and_javascript_before_its_assets() {
        let plan = plan_for(&[
            ("Gemfile", "gem \"rails\"\n"),
            ("bin/rails", ""),
            ("config/application.rb", ""),
            ("app/assets/config/manifest.js", ""),
            (
                "package.json",
                r#"{"scripts": {"build": "esbuild app/javascript/*.*"}}"#,
            ),
            ("package-lock.json", "{}"),
        ]);
        assert_eq!(
            plan.build_command.as_deref(),
            Some("bundle config set --local path vendor/bundle && bundle config set --local without development:test && bundle install && npm ci --include=dev && npm run build && SECRET_KEY_BASE_DUMMY=1 bin/rails assets:precompile")
        );
        assert_eq!(
            plan.processes["app"],
            "bin/rails server -b 127.0.0.1 -p $PORT"
        );
        assert_eq!(plan.left_out, ["node_modules/", "/vendor/bundle/"]);
    }

    #[test]
    fn a_rack_app_runs_under_rackup_and_a_gemfile_alone_runs_nothing() {
        let rack = plan_for(&[("Gemfile", "gem \"sinatra\"\n"), ("config.ru", "run App\n")]);
        assert_eq!(
            rack.processes["app"],
            "bundle exec rackup -o 127.0.0.1 -p $PORT"
        );
        assert!(rack.env.is_empty() && rack.release_command.is_none());
        assert_eq!(
            rack.build_command.as_deref(),
            Some("bundle config set --local path vendor/bundle && bundle config set --local without development:test && bundle install")
        );
        let gems = plan_for(&[("Gemfile", "")]);
        assert!(gems.processes.is_empty());
    }
}
