//! Value parsers: a wrong number is refused by clap with the flag's name, before any work.

fn number<T: std::str::FromStr>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.trim().parse::<T>().map_err(|e| format!("{s:?}: {e}"))
}

/// A count of at least 1.
pub fn count(s: &str) -> Result<usize, String> {
    match number::<usize>(s)? {
        0 => Err("must be at least 1".into()),
        n if n > 1 << 40 => Err(format!("{n} is absurdly large")),
        n => Ok(n),
    }
}

/// A tensor size of at least 1 (i64, as libtorch takes it).
pub fn size(s: &str) -> Result<i64, String> {
    match number::<i64>(s)? {
        n if n < 1 => Err(format!("{n}: must be at least 1")),
        n if n > 1 << 31 => Err(format!("{n} is absurdly large")),
        n => Ok(n),
    }
}

/// CPU threads: 1 to 4x the machine's logical CPUs.
pub fn threads(s: &str) -> Result<i32, String> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let most = (4 * cpus).max(4);
    match number::<i64>(s)? {
        n if n < 1 => Err(format!("{n}: must be at least 1")),
        n if n as usize > most => Err(format!(
            "{n}: more than 4x this machine's {cpus} CPUs (at most {most})"
        )),
        n => Ok(n as i32),
    }
}

fn finite(s: &str) -> Result<f64, String> {
    let x = number::<f64>(s)?;
    if x.is_finite() {
        Ok(x)
    } else {
        Err(format!("{s:?} is not a finite number"))
    }
}

/// A share between 0 and 1.
pub fn fraction(s: &str) -> Result<f64, String> {
    match finite(s)? {
        x if (0.0..=1.0).contains(&x) => Ok(x),
        x => Err(format!("{x}: must be between 0 and 1")),
    }
}

/// A finite number above 0.
pub fn positive(s: &str) -> Result<f64, String> {
    match finite(s)? {
        x if x > 0.0 => Ok(x),
        x => Err(format!("{x}: must be above 0")),
    }
}

/// A finite number, 0 or more.
pub fn non_negative(s: &str) -> Result<f64, String> {
    match finite(s)? {
        x if x >= 0.0 => Ok(x),
        x => Err(format!("{x}: must be 0 or more")),
    }
}

/// A `--dtype` value: f32, or bf16/f16.
pub fn kind(s: &str) -> Result<tch::Kind, String> {
    Ok(match s {
        "f32" => tch::Kind::Float,
        "bf16" => tch::Kind::BFloat16,
        "f16" => tch::Kind::Half,
        _ => return Err(format!("{s:?}: expected f32, bf16 or f16")),
    })
}
