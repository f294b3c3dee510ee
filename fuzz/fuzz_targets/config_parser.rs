//! Arbitrary UTF-8 as `flowgate.toml`, through `flowgate_config::parse` (what every
//! command runs first) and, when it parses, through what commands do next with
//! it: choosing each env and resolving every flow's deployment and image there.
//! None of it may panic; errors must render (they quote the input by location).
#![no_main]

use flowgate_config::{parse, select_env, TemplateVars};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let config = match parse("flowgate.toml", text) {
        Ok(config) => config,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = format!("{config:?}");
    let mut envs: Vec<String> = config.env_names().iter().map(ToString::to_string).collect();
    envs.push("dev".into());
    let vars = TemplateVars {
        commit: Some("0123456789abcdef0123456789abcdef01234567".into()),
        short: Some("0123456".into()),
        branch: Some("main".into()),
        ..TemplateVars::default()
    };
    for name in &envs {
        let env = match select_env(Some(name), None, &config, "fuzz user") {
            Ok(env) => env,
            Err(e) => {
                let _ = e.to_string();
                continue;
            }
        };
        for (flow, _) in config.flows() {
            if let Err(e) = config.deployment(flow, &env, &vars) {
                let _ = e.to_string();
            }
            if let Err(e) = config.build_image(flow, &vars) {
                let _ = e.to_string();
            }
        }
    }
});
