//! The libraries Redis adds to Lua that scripts use: `bit` (LuaBitOp) and
//! `cjson` (lua-cjson), and the `rand48` generator behind `math.random`.

use mlua::{Lua, MultiValue, Table, Value, Variadic};

/// Redis's `redisLrand48`: the 48-bit linear congruential generator of
/// `lrand48`, the same sequence on every platform.
#[derive(Clone, Copy, Debug)]
pub(super) struct Rand48 {
    state: u64,
}

const RAND48_MASK: u64 = (1 << 48) - 1;

impl Rand48 {
    /// `srand48(seed)`.
    pub(super) fn seeded_with(seed: i32) -> Self {
        let seed = u64::from(seed as u32);
        Rand48 {
            state: ((seed << 16) | 0x330e) & RAND48_MASK,
        }
    }

    /// Seeded from 64 bits (the operation's generator).
    pub(super) fn seeded(seed: u64) -> Self {
        Self::seeded_with((seed >> 32) as i32)
    }

    /// `lrand48()`: 31 bits.
    fn next(&mut self) -> i32 {
        self.state = (self.state.wrapping_mul(0x5_deec_e66d).wrapping_add(0xb)) & RAND48_MASK;
        (self.state >> 17) as i32
    }

    /// What Redis's `math.random()` draws: in `[0, 1)`.
    pub(super) fn next_unit(&mut self) -> f64 {
        let max = f64::from(i32::MAX);
        f64::from(self.next() % i32::MAX) / max
    }
}

/// Adds `bit` and `cjson` to the globals.
pub(super) fn install(lua: &Lua) -> mlua::Result<()> {
    lua.globals().raw_set("bit", bit(lua)?)?;
    lua.globals()
        .raw_set("cjson", super::cjson::library(lua)?)?;
    Ok(())
}

/// LuaBitOp's argument rule: a number taken modulo 2^32 (rounded to the
/// nearest integer), as signed 32 bits.
fn tobit(n: f64) -> i32 {
    // Adding 2^52 + 2^51 leaves the integer part in the low mantissa bits.
    let biased = n + 6_755_399_441_055_744.0;
    biased.to_bits() as u32 as i32
}

fn numbers(args: &MultiValue, name: &str) -> mlua::Result<Vec<i32>> {
    args.iter()
        .enumerate()
        .map(|(at, value)| match value {
            Value::Integer(n) => Ok(tobit(*n as f64)),
            Value::Number(n) => Ok(tobit(*n)),
            Value::String(s) => s
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<f64>().ok())
                .map(tobit)
                .ok_or_else(|| bad_number(at, name, "string")),
            other => Err(bad_number(at, name, other.type_name())),
        })
        .collect()
}

fn bad_number(at: usize, name: &str, got: &str) -> mlua::Error {
    mlua::Error::runtime(format!(
        "bad argument #{} to '{name}' (number expected, got {got})",
        at + 1
    ))
}

fn first(args: &MultiValue, name: &str) -> mlua::Result<(i32, Vec<i32>)> {
    let all = numbers(args, name)?;
    match all.split_first() {
        Some((head, rest)) => Ok((*head, rest.to_vec())),
        None => Err(bad_number(0, name, "no value")),
    }
}

type Unary = fn(i32) -> i32;
type Shift = fn(i32, u32) -> i32;
type Fold = fn(i32, i32) -> i32;

fn bit(lua: &Lua) -> mlua::Result<Table> {
    let table = lua.create_table()?;
    let unary: [(&str, Unary); 3] = [
        ("tobit", |x| x),
        ("bnot", |x| !x),
        ("bswap", i32::swap_bytes),
    ];
    for (name, op) in unary {
        let f = lua
            .create_function(move |_, args: MultiValue| Ok(f64::from(op(first(&args, name)?.0))))?;
        table.raw_set(name, f)?;
    }
    let folds: [(&str, Fold); 3] = [
        ("band", |a, b| a & b),
        ("bor", |a, b| a | b),
        ("bxor", |a, b| a ^ b),
    ];
    for (name, op) in folds {
        let f = lua.create_function(move |_, args: MultiValue| {
            let (head, rest) = first(&args, name)?;
            Ok(f64::from(rest.into_iter().fold(head, op)))
        })?;
        table.raw_set(name, f)?;
    }
    let shifts: [(&str, Shift); 5] = [
        ("lshift", |x, n| ((x as u32) << n) as i32),
        ("rshift", |x, n| ((x as u32) >> n) as i32),
        ("arshift", |x, n| x >> n),
        ("rol", |x, n| (x as u32).rotate_left(n) as i32),
        ("ror", |x, n| (x as u32).rotate_right(n) as i32),
    ];
    for (name, op) in shifts {
        let f = lua.create_function(move |_, args: MultiValue| {
            let all = numbers(&args, name)?;
            let (x, n) = match all.as_slice() {
                [x, n, ..] => (*x, *n),
                _ => return Err(bad_number(all.len(), name, "no value")),
            };
            Ok(f64::from(op(x, (n as u32) & 31)))
        })?;
        table.raw_set(name, f)?;
    }
    let tohex = lua.create_function(|lua, args: Variadic<Value>| {
        let all = numbers(&args.into_iter().collect(), "tohex")?;
        let (mut x, n) = match all.as_slice() {
            [x] => (*x as u32, 8),
            [x, n, ..] => (*x as u32, *n),
            [] => return Err(bad_number(0, "tohex", "no value")),
        };
        let digits: &[u8] = if n < 0 {
            b"0123456789ABCDEF"
        } else {
            b"0123456789abcdef"
        };
        let n = n.unsigned_abs().min(8) as usize;
        let mut out = vec![b'0'; n];
        for at in (0..n).rev() {
            out[at] = digits[(x & 15) as usize];
            x >>= 4;
        }
        lua.create_string(out)
    })?;
    table.raw_set("tohex", tohex)?;
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rand48_is_lrand48() {
        // lrand48() after srand48(0), as glibc prints it.
        let mut r = Rand48::seeded_with(0);
        let first: Vec<i32> = (0..3).map(|_| r.next()).collect();
        assert_eq!(first, vec![366_850_414, 1_610_402_240, 206_956_554]);
        assert_eq!(Rand48::seeded_with(-5).next(), 1_754_100_061);
    }

    #[test]
    fn tobit_wraps_and_rounds_as_luabitop() {
        assert_eq!(tobit(4_294_967_295.0), -1);
        assert_eq!(tobit(4_294_967_296.0), 0);
        assert_eq!(tobit(-1.0), -1);
        assert_eq!(tobit(2_147_483_648.0), i32::MIN);
        assert_eq!(tobit(1.5), 2);
    }
}
