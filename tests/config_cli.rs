//! `harmony config` through the real binary: every key with its effective
//! value, one key read, written and removed, bad values and unknown keys
//! refused with nothing written.

#[path = "support/cli.rs"]
mod cli;

use std::fs;

use cli::{fails, json, location, ok};
use harmony::CONFIG_KEYS;

#[test]
fn lists_every_key_with_its_effective_value_and_source() {
    let (loc, _) = location("alpha");
    let all = json(loc.path(), &["config"]);
    let keys: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["key"].as_str().unwrap())
        .collect();
    let known: Vec<&str> = CONFIG_KEYS.iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, known);
    let find = |all: &serde_json::Value, key: &str| {
        all.as_array()
            .unwrap()
            .iter()
            .find(|v| v["key"] == key)
            .unwrap()
            .clone()
    };
    let quiet = find(&all, "quiet_period");
    assert_eq!(
        (&quiet["value"], &quiet["source"]),
        (&"1s".into(), &"default".into())
    );
    let listen = find(&all, "listen");
    assert_eq!(
        (&listen["value"], &listen["source"]),
        (&"127.0.0.1:0".into(), &"init".into())
    );
    let limit = find(&all, "bandwidth_limit");
    assert_eq!(limit["value"], serde_json::Value::Null);

    let human = ok(loc.path(), &["config"]);
    assert!(human.contains("quiet_period = \"1s\""), "{human}");
    assert!(human.contains("# default"), "{human}");

    ok(loc.path(), &["config", "quiet_period", "250ms"]);
    let quiet = find(&json(loc.path(), &["config"]), "quiet_period");
    assert_eq!(
        (&quiet["value"], &quiet["source"]),
        (&"250ms".into(), &"file".into())
    );
}

#[test]
fn writes_one_key_keeping_the_rest_of_the_file() {
    let (loc, _) = location("alpha");
    let file = loc.path().join(".harmony/config.toml");
    fs::write(
        &file,
        "# tuned for the NAS\nwatch = false # spins the disks\nfuture = 1\n",
    )
    .unwrap();

    let out = ok(loc.path(), &["config", "watch", "true"]);
    assert_eq!(out.trim(), "watch = true");
    ok(loc.path(), &["config", "bandwidth_limit", "10MiB"]);
    ok(loc.path(), &["config", "listen", "0.0.0.0:7447"]);
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "# tuned for the NAS\nwatch = true # spins the disks\nfuture = 1\n\
         bandwidth_limit = \"10MiB\"\nlisten = \"0.0.0.0:7447\"\n"
    );
    assert_eq!(ok(loc.path(), &["config", "listen"]).trim(), "0.0.0.0:7447");
    assert_eq!(
        ok(loc.path(), &["config", "bandwidth_limit"]).trim(),
        "10485760"
    );
    let one = json(loc.path(), &["config", "watch"]);
    assert_eq!(one["value"], true);
    assert_eq!(one["source"], "file");

    // --unset: back to the default, the rest kept.
    let out = ok(loc.path(), &["config", "--unset", "listen"]);
    assert!(out.contains("# from init"), "{out}");
    ok(loc.path(), &["config", "--unset", "future"]);
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "# tuned for the NAS\nwatch = true # spins the disks\nbandwidth_limit = \"10MiB\"\n"
    );
}

#[test]
fn refuses_a_bad_value_or_an_unknown_key_and_writes_nothing() {
    let (loc, _) = location("alpha");
    let file = loc.path().join(".harmony/config.toml");
    fs::write(&file, "# mine\nquiet_period = \"2s\"\n").unwrap();
    let before = fs::read_to_string(&file).unwrap();

    for (key, value) in [
        ("quiet_period", "soon"),
        ("quiet_period", "0s"),
        ("watch", "maybe"),
        ("listen", "nowhere"),
        ("bandwidth_limit", "0"),
    ] {
        let err = fails(loc.path(), &["config", key, value]);
        assert!(err.contains(&format!("`{key}`")), "{key} {value}: {err}");
        assert!(err.contains("nothing written"), "{err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
    }
    let err = fails(loc.path(), &["config", "quiet", "1s"]);
    assert!(err.contains("unknown key `quiet`"), "{err}");
    for (key, _) in CONFIG_KEYS {
        assert!(err.contains(key), "lists {key}: {err}");
    }
    assert!(fails(loc.path(), &["config", "quiet"]).contains("unknown key `quiet`"));
    assert!(fails(loc.path(), &["config", "--unset", "quiet"]).contains("unknown key"));
    assert_eq!(fs::read_to_string(&file).unwrap(), before);

    // Usage: --unset takes no other arguments.
    let out = cli::harmony(loc.path(), &["config", "--unset", "watch", "watch"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_keys_are_in_the_help_and_the_man_page() {
    let (loc, _) = location("alpha");
    let help = ok(loc.path(), &["config", "--help"]);
    let man = tempfile::tempdir().unwrap();
    ok(loc.path(), &["man", man.path().to_str().unwrap()]);
    let page = fs::read_to_string(man.path().join("harmony-config.1")).unwrap();
    for (key, _) in CONFIG_KEYS {
        assert!(help.contains(key), "--help lists {key}");
        assert!(page.contains(key), "the man page lists {key}");
    }
}
