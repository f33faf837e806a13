//! The examples' command lines: `--flag value` pairs, each handed to the example's
//! own `match` (the loader and the benchmarks share this; the servers use clap).

/// One `--flag value` pair.
pub struct Flag<'a> {
    /// The flag, as given (`--clients`).
    pub name: &'a str,
    /// Its value.
    pub value: String,
    usage: &'a str,
}

impl Flag<'_> {
    /// The value as a count, or the error with the usage.
    pub fn num(&self) -> Result<usize, String> {
        (self.value.parse()).map_err(|e| {
            let (name, value, usage) = (self.name, &self.value, self.usage);
            format!("bad {name} {value:?}: {e}\n{usage}")
        })
    }

    /// The error for a flag the example does not know.
    pub fn unknown(&self) -> String {
        format!("unknown flag {}\n{}", self.name, self.usage)
    }
}

/// Hands each `--flag value` of the command line to `set`, in order; `--help` or
/// `-h`, a flag without a value, or `set`'s error ends it with that message.
pub fn each_flag(
    usage: &str,
    mut set: impl FnMut(Flag<'_>) -> Result<(), String>,
) -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    while let Some(name) = args.next() {
        if name == "--help" || name == "-h" {
            return Err(usage.to_owned());
        }
        let value = (args.next()).ok_or(format!("{name} needs a value\n{usage}"))?;
        set(Flag {
            name: &name,
            value,
            usage,
        })?;
    }
    Ok(())
}
