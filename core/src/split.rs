//! Splits: deterministic assignment of a segment's members to a holdout group and named variants.
//!
//! A [`Split`] divides a segment's members by percentages, e.g. 10 % holdout, 45 % variant `A`, 45 % variant
//! `B`. The assignment of an entity is a pure function of (entity key, segment name, salt, the groups and
//! their percentages): it is the same in every run, process, platform and segkit release, and needs no stored
//! state.
//!
//! ```
//! use std::sync::Arc;
//! use segkit::deps::arrow::array::{Array, ArrayRef, Int64Array};
//! use segkit::Split;
//!
//! let split: Split = serde_json::from_str(
//!     r#"{"holdout": 10, "variants": [{"name": "A", "percent": 45}, {"name": "B", "percent": 45}], "salt": "2026-q3"}"#,
//! )?;
//! split.validate("segment vip.split")?;
//! let keys: ArrayRef = Arc::new(Int64Array::from_iter_values(0..1000));
//! let variants = split.assign("vip", &keys)?;
//! assert_eq!(variants.len(), 1000);
//! assert!(variants.iter().all(|v| matches!(v, Some("holdout" | "A" | "B"))));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The hashing scheme (normative: changing any detail reshuffles every split)
//!
//! The groups are the holdout, named [`HOLDOUT`] (`"holdout"`), and the variants; each group `g` with
//! percent `p_g > 0` takes part, groups at 0 % never receive anyone.
//!
//! 1. **Key bytes.** Integer keys (Int32 and Int64) are written as their decimal text in ASCII (`42`, `-7`);
//!    string keys are their UTF-8 bytes. So the Int32 key `42`, the Int64 key `42` and the string key `"42"`
//!    are the same entity for splitting purposes, and the scheme can be reproduced in any language or SQL
//!    engine that has SHA-256.
//! 2. **Key digest.** `D = SHA-256(P || key bytes)` where the prefix `P` is
//!    `"segkit.split.v1"` (15 bytes) `|| u32_le(len(segment)) || segment`
//!    `|| 0x00` (no salt) or `0x01 || u32_le(len(salt)) || salt`. `P` is self-delimiting, so the key bytes
//!    are simply everything after it.
//! 3. **Per-group uniform.** `x_g = SipHash-2-4(k0, k1, UTF-8 bytes of the group name)`, with
//!    `k0 = u64_le(D[0..8])`, `k1 = u64_le(D[8..16])` (SipHash-2-4 as in Aumasson & Bernstein 2012, 64-bit
//!    output), and `u_g = ((x_g >> 11) + 1) / 2^53`, uniform in (0, 1].
//! 4. **Weighted rendezvous (highest random weight).** The entity goes to the group with the smallest score
//!    `-ln(u_g) / p_g`; on an exact tie (probability ~2⁻⁵³), to the group whose name sorts first (bytewise).
//!
//! Each score is an exponential variable with rate `p_g`, independent across groups, so a group receives
//! each entity with probability `p_g / 100`; the order in which variants are listed does not matter.
//!
//! # Stability guarantee
//!
//! An entity's score for a group depends only on (key, segment, salt, group name, that group's percent). Hence,
//! exactly:
//!
//! * Same key, segment, salt and groups → same group, always.
//! * Changing the percent of **one** group `g` (the others keeping their ratios to each other) only moves
//!   entities into `g` (when `p_g` grows) or out of `g` (when it shrinks); nobody moves between two other
//!   groups. The number moved is the minimum possible: `|Δp_g|` percent of the members.
//! * Adding a group `g` only moves entities into `g`, taken from every other group in proportion to its size;
//!   removing `g` only moves its entities out, spread over the others in proportion to their sizes.
//! * In general, an entity can only move **out of** a group whose weight, relative to the others, went down, or
//!   **into** a group whose relative weight went up. For a change of several percentages at once the expected
//!   fraction that stays is `Σ_g 1 / Σ_h max(p_h/p_g, p'_h/p'_g)` (the weighted Jaccard "P-MinHash" bound, which
//!   no stateless scheme can beat for all changes at once), which can exceed the minimum movement. Example:
//!   holdout 10 / A 45 / B 45 → holdout 10 / A 45 / B 30 / C 15 keeps A and holdout entities out of B,
//!   moves nobody from A or the holdout anywhere but into C, and moves ≈ 22.2 % of members (the minimum
//!   would be 15 %, all from B to C).
//! * A different salt, segment name or variant name reshuffles (the salt is there to do that on purpose).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringArray, StringBuilder};
use arrow::datatypes::{DataType as ArrowType, Int32Type, Int64Type};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The name under which the holdout group is reported by [`Split::assign`]; reserved as a variant name.
///
/// ```
/// assert_eq!(segkit::split::HOLDOUT, "holdout");
/// ```
pub const HOLDOUT: &str = "holdout";

/// Version tag at the start of the hashed prefix; part of the normative scheme.
const DOMAIN: &[u8] = b"segkit.split.v1";

/// Longest accepted variant name, in bytes.
const MAX_NAME_LEN: usize = 64;

/// A split of a segment's members into a holdout and named variants, by percentages that add up to 100.
///
/// JSON shape: `{"holdout": 10, "variants": [{"name": "A", "percent": 45}, {"name": "B", "percent": 45}],
/// "salt": "2026-q3"}`; `holdout` defaults to 0 and `salt` to none. See the [module docs](self) for the
/// assignment scheme and its stability guarantee.
///
/// ```
/// use segkit::Split;
/// let split = Split::new(10.0).variant("A", 45.0).variant("B", 45.0).salt("2026-q3");
/// split.validate("segment vip.split")?;
/// let json = serde_json::to_string(&split)?;
/// assert_eq!(json, r#"{"holdout":10.0,"variants":[{"name":"A","percent":45.0},{"name":"B","percent":45.0}],"salt":"2026-q3"}"#);
/// assert_eq!(serde_json::from_str::<Split>(&json)?, split);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Split {
    /// Percent of members held out (reported as the variant `"holdout"`), 0 to 100. Default 0.
    #[serde(default)]
    pub holdout: f64,
    /// The variants, each with its percent. Order does not affect assignment.
    pub variants: Vec<Variant>,
    /// Optional salt: changing it reshuffles every entity (e.g. per experiment or per quarter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<String>,
}

/// One named variant of a [`Split`] and its share of the members in percent.
///
/// ```
/// let v: segkit::split::Variant = serde_json::from_str(r#"{"name": "A", "percent": 45}"#)?;
/// assert_eq!((v.name.as_str(), v.percent), ("A", 45.0));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Name: 1–64 ASCII letters, digits, `_` or `-`; unique within the split; not `holdout`.
    pub name: String,
    /// Share of the members, in percent (0 to 100).
    pub percent: f64,
}

impl Variant {
    /// A variant called `name` receiving `percent` percent of the members.
    ///
    /// ```
    /// let v = segkit::split::Variant::new("control", 50.0);
    /// assert_eq!(v.name, "control");
    /// ```
    pub fn new(name: impl Into<String>, percent: f64) -> Self {
        Variant { name: name.into(), percent }
    }
}

impl Split {
    /// A split holding out `holdout` percent, with no variants and no salt yet.
    ///
    /// ```
    /// let split = segkit::Split::new(100.0);
    /// assert!(split.variants.is_empty());
    /// ```
    pub fn new(holdout: f64) -> Self {
        Split { holdout, variants: Vec::new(), salt: None }
    }

    /// Adds a variant (builder style).
    ///
    /// ```
    /// let split = segkit::Split::new(0.0).variant("A", 50.0).variant("B", 50.0);
    /// assert_eq!(split.variants.len(), 2);
    /// ```
    pub fn variant(mut self, name: impl Into<String>, percent: f64) -> Self {
        self.variants.push(Variant::new(name, percent));
        self
    }

    /// Sets the salt (builder style).
    ///
    /// ```
    /// let split = segkit::Split::new(0.0).variant("A", 100.0).salt("2026-q3");
    /// assert_eq!(split.salt.as_deref(), Some("2026-q3"));
    /// ```
    pub fn salt(mut self, salt: impl Into<String>) -> Self {
        self.salt = Some(salt.into());
        self
    }

    /// Checks the split; `path` names it in errors (conventionally `segment <name>.split`).
    ///
    /// Rules: at least one variant; every percentage finite and ≥ 0; holdout plus variants add up to exactly 100
    /// (within 1e-9; there is no implicit remainder group); variant names are 1–64 ASCII letters, digits, `_`
    /// or `-`, unique, and not `holdout` in any letter case. Errors are [`Error::Definition`] with the path of
    /// the offending field, e.g. `segment vip.split.variants[1].percent`.
    ///
    /// ```
    /// use segkit::Split;
    /// let bad = Split::new(10.0).variant("A", 45.0).variant("B", -45.0);
    /// let err = bad.validate("segment vip.split").unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     "invalid definition of segment vip.split.variants[1].percent: must be a finite number >= 0, got -45"
    /// );
    /// ```
    pub fn validate(&self, path: &str) -> Result<()> {
        check_percent(self.holdout, &format!("{path}.holdout"))?;
        if self.variants.is_empty() {
            return Err(Error::definition(format!("{path}.variants"), "at least one variant is required"));
        }
        for (i, v) in self.variants.iter().enumerate() {
            let name_path = format!("{path}.variants[{i}].name");
            let n = &v.name;
            let ok = !n.is_empty()
                && n.len() <= MAX_NAME_LEN
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !ok {
                return Err(Error::definition(
                    name_path,
                    format!("variant name {n:?} must be 1–{MAX_NAME_LEN} ASCII letters, digits, `_` or `-`"),
                ));
            }
            if n.eq_ignore_ascii_case(HOLDOUT) {
                return Err(Error::definition(
                    name_path,
                    format!("variant name {n:?} is reserved for the holdout group; set `holdout` instead"),
                ));
            }
            if let Some(j) = self.variants[..i].iter().position(|o| o.name == *n) {
                return Err(Error::definition(name_path, format!("duplicate variant name {n:?} (also variants[{j}])")));
            }
            check_percent(v.percent, &format!("{path}.variants[{i}].percent"))?;
        }
        let variants: f64 = self.variants.iter().map(|v| v.percent).sum();
        let total = self.holdout + variants;
        if (total - 100.0).abs() > 1e-9 {
            return Err(Error::definition(
                path,
                format!(
                    "holdout and variant percentages must add up to exactly 100, got {total} \
                     (holdout {} + variants {variants}); there is no implicit remainder group",
                    self.holdout
                ),
            ));
        }
        Ok(())
    }

    /// The variant of each key: `"holdout"` or a variant name, one per key, in the order of `keys`.
    ///
    /// `segment` is the segment's name (part of the hash, so two segments with the same split are
    /// independent). `keys` must be Int32, Int64, Utf8, LargeUtf8 or Utf8View without nulls; the split is
    /// validated first (errors name `segment <segment>.split`). The result is deterministic across runs,
    /// processes, platforms and releases; see the [module docs](self) for the exact scheme and guarantee.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use segkit::deps::arrow::array::{ArrayRef, Int32Array, StringArray};
    /// let split = segkit::Split::new(10.0).variant("A", 45.0).variant("B", 45.0);
    /// let ints: ArrayRef = Arc::new(Int32Array::from(vec![1, 2, 3]));
    /// let strs: ArrayRef = Arc::new(StringArray::from(vec!["1", "2", "3"]));
    /// // Integer keys hash as their decimal text, so both give the same variants.
    /// assert_eq!(split.assign("vip", &ints)?, split.assign("vip", &strs)?);
    /// # Ok::<(), segkit::Error>(())
    /// ```
    pub fn assign(&self, segment: &str, keys: &ArrayRef) -> Result<StringArray> {
        self.validate(&format!("segment {segment}.split"))?;
        if keys.null_count() > 0 {
            return Err(Error::InvalidArgument(format!(
                "split of segment `{segment}`: {} of {} keys are null; keys must not be null",
                keys.null_count(),
                keys.len()
            )));
        }
        let assigner = Assigner::new(self, segment);
        let mut out = Vec::with_capacity(keys.len());
        match keys.data_type() {
            ArrowType::Int64 => {
                let mut buf = [0u8; 20];
                for &k in keys.as_primitive::<Int64Type>().values() {
                    out.push(assigner.group_of(decimal(k, &mut buf)));
                }
            }
            ArrowType::Int32 => {
                let mut buf = [0u8; 20];
                for &k in keys.as_primitive::<Int32Type>().values() {
                    out.push(assigner.group_of(decimal(i64::from(k), &mut buf)));
                }
            }
            ArrowType::Utf8 => out.extend(keys.as_string::<i32>().iter().map(|k| assigner.group_of(str_bytes(k)))),
            ArrowType::LargeUtf8 => out.extend(keys.as_string::<i64>().iter().map(|k| assigner.group_of(str_bytes(k)))),
            ArrowType::Utf8View => out.extend(keys.as_string_view().iter().map(|k| assigner.group_of(str_bytes(k)))),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "split of segment `{segment}`: keys of type {other} are not supported \
                     (use Int32, Int64 or a string type)"
                )));
            }
        }
        let bytes: usize = out.iter().map(|&g| assigner.groups[g].name.len()).sum();
        let mut builder = StringBuilder::with_capacity(out.len(), bytes);
        for g in out {
            builder.append_value(&assigner.groups[g].name);
        }
        Ok(builder.finish())
    }

    /// Like [`Split::assign`], returned as an [`ArrayRef`] (ready to be a column of a `RecordBatch`).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use segkit::deps::arrow::array::{Array, ArrayRef, Int64Array};
    /// let split = segkit::Split::new(0.0).variant("only", 100.0);
    /// let keys: ArrayRef = Arc::new(Int64Array::from(vec![7, 8]));
    /// assert_eq!(split.assign_array("s", &keys)?.len(), 2);
    /// # Ok::<(), segkit::Error>(())
    /// ```
    pub fn assign_array(&self, segment: &str, keys: &ArrayRef) -> Result<ArrayRef> {
        Ok(Arc::new(self.assign(segment, keys)?))
    }
}

fn check_percent(p: f64, path: &str) -> Result<()> {
    if p.is_finite() && p >= 0.0 {
        Ok(())
    } else {
        Err(Error::definition(path, format!("must be a finite number >= 0, got {p}")))
    }
}

/// Keys were checked to have no nulls; a null (impossible) hashes as the empty string rather than panicking.
fn str_bytes(k: Option<&str>) -> &[u8] {
    k.unwrap_or_default().as_bytes()
}

/// The decimal text of `v` written into the end of `buf`, without allocating.
fn decimal(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut n = v.unsigned_abs();
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    &buf[i..]
}

/// One participating group (percent > 0).
struct Group {
    name: String,
    percent: f64,
}

/// The per-split precomputation: the hash state after the prefix, and the participating groups sorted by name.
struct Assigner {
    prefix: Sha256,
    groups: Vec<Group>,
}

impl Assigner {
    fn new(split: &Split, segment: &str) -> Self {
        let mut prefix = Sha256::new();
        prefix.update(DOMAIN);
        prefix.update((segment.len() as u32).to_le_bytes());
        prefix.update(segment.as_bytes());
        match &split.salt {
            None => prefix.update([0u8]),
            Some(s) => {
                prefix.update([1u8]);
                prefix.update((s.len() as u32).to_le_bytes());
                prefix.update(s.as_bytes());
            }
        }
        let mut groups: Vec<Group> = std::iter::once((HOLDOUT, split.holdout))
            .chain(split.variants.iter().map(|v| (v.name.as_str(), v.percent)))
            .filter(|&(_, p)| p > 0.0)
            .map(|(name, percent)| Group { name: name.to_string(), percent })
            .collect();
        // Sorting by name makes the (measure-zero) tie-break independent of the order variants are listed in.
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Assigner { prefix, groups }
    }

    /// Index into `groups` of the group the key with these canonical bytes belongs to.
    fn group_of(&self, key: &[u8]) -> usize {
        let mut h = self.prefix.clone();
        h.update(key);
        let d = h.finalize();
        let k0 = u64::from_le_bytes(d[0..8].try_into().expect("8 bytes"));
        let k1 = u64::from_le_bytes(d[8..16].try_into().expect("8 bytes"));
        let mut best = 0;
        let mut best_score = f64::INFINITY;
        for (i, g) in self.groups.iter().enumerate() {
            let score = -unit(siphash24(k0, k1, g.name.as_bytes())).ln() / g.percent;
            if score < best_score {
                best = i;
                best_score = score;
            }
        }
        best
    }
}

/// Maps 64 random bits to a uniform number in (0, 1] (53-bit resolution).
fn unit(x: u64) -> f64 {
    ((x >> 11) + 1) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// SipHash-2-4 with 64-bit output (Aumasson & Bernstein, "SipHash: a fast short-input PRF", 2012).
fn siphash24(k0: u64, k1: u64, msg: &[u8]) -> u64 {
    let mut v = [k0 ^ 0x736f6d6570736575, k1 ^ 0x646f72616e646f6d, k0 ^ 0x6c7967656e657261, k1 ^ 0x7465646279746573];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut chunks = msg.chunks_exact(8);
    for c in &mut chunks {
        let m = u64::from_le_bytes(c.try_into().expect("8 bytes"));
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    }
    let mut last = (msg.len() as u64) << 56;
    for (i, &b) in chunks.remainder().iter().enumerate() {
        last |= u64::from(b) << (8 * i);
    }
    v[3] ^= last;
    round(&mut v);
    round(&mut v);
    v[0] ^= last;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::array::{Int32Array, Int64Array, LargeStringArray, StringViewArray};

    use super::*;

    fn int_keys(n: i64) -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(0..n))
    }

    fn names(a: &StringArray) -> Vec<&str> {
        a.iter().map(|v| v.expect("no nulls")).collect()
    }

    fn abc(holdout: f64, a: f64, b: f64) -> Split {
        Split::new(holdout).variant("A", a).variant("B", b)
    }

    fn shares(v: &[&str]) -> HashMap<String, f64> {
        let mut m = HashMap::new();
        for s in v {
            *m.entry(s.to_string()).or_insert(0.0) += 100.0 / v.len() as f64;
        }
        m
    }

    fn moved(a: &[&str], b: &[&str]) -> f64 {
        a.iter().zip(b).filter(|(x, y)| x != y).count() as f64 / a.len() as f64
    }

    #[test]
    fn siphash_matches_reference_vectors() {
        // Key 00 01 .. 0f; messages of length 0 and 15 (00 01 .. 0e), from the SipHash paper / reference code.
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        assert_eq!(siphash24(k0, k1, &[]), 0x726fdb47dd0e0e31);
        let msg: Vec<u8> = (0..15).collect();
        assert_eq!(siphash24(k0, k1, &msg), 0xa129ca6149be45e5);
    }

    #[test]
    fn decimal_text() {
        let mut buf = [0u8; 20];
        for v in [0, 7, -7, 42, 1_000_000, i64::MAX, i64::MIN, i64::from(i32::MIN)] {
            assert_eq!(decimal(v, &mut buf), v.to_string().as_bytes());
        }
    }

    #[test]
    fn json_shape() {
        let json = r#"{"holdout": 10, "variants": [{"name": "A", "percent": 45}, {"name": "B", "percent": 45}], "salt": "2026-q3"}"#;
        let s: Split = serde_json::from_str(json).unwrap();
        assert_eq!(s, abc(10.0, 45.0, 45.0).salt("2026-q3"));
        let s: Split = serde_json::from_str(r#"{"variants": [{"name": "A", "percent": 100}]}"#).unwrap();
        assert_eq!(s, Split::new(0.0).variant("A", 100.0));
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"holdout":0.0,"variants":[{"name":"A","percent":100.0}]}"#);
        let err = serde_json::from_str::<Split>(r#"{"holdut": 10, "variants": []}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `holdut`"), "{err}");
    }

    #[test]
    fn deterministic_across_calls_and_pinned() {
        let s = abc(10.0, 45.0, 45.0).salt("2026-q3");
        let keys = int_keys(10_000);
        let a = s.assign("vip", &keys).unwrap();
        let b = s.assign("vip", &keys).unwrap();
        assert_eq!(a, b);
        // Golden values: these must never change (they would reshuffle every user's stored splits).
        let pinned: ArrayRef =
            Arc::new(StringArray::from(vec!["0", "1", "2", "3", "4", "5", "6", "7", "alice", "bob"]));
        let got = s.assign("vip", &pinned).unwrap();
        assert_eq!(names(&got), GOLDEN);
    }

    // Reproduced independently with Python's hashlib.sha256 and a from-the-paper SipHash-2-4.
    const GOLDEN: [&str; 10] = ["A", "A", "B", "B", "A", "holdout", "B", "A", "B", "B"];

    #[test]
    fn int32_int64_and_string_keys_agree() {
        let s = abc(10.0, 45.0, 45.0);
        let vals: Vec<i32> = (-5000..5000).chain([i32::MIN, i32::MAX]).collect();
        let i32s: ArrayRef = Arc::new(Int32Array::from(vals.clone()));
        let i64s: ArrayRef = Arc::new(Int64Array::from_iter_values(vals.iter().map(|&v| i64::from(v))));
        let text: Vec<String> = vals.iter().map(|v| v.to_string()).collect();
        let utf8: ArrayRef = Arc::new(StringArray::from_iter_values(&text));
        let large: ArrayRef = Arc::new(LargeStringArray::from_iter_values(&text));
        let view: ArrayRef = Arc::new(StringViewArray::from_iter_values(&text));
        let expected = s.assign("seg", &i64s).unwrap();
        for keys in [&i32s, &utf8, &large, &view] {
            assert_eq!(s.assign("seg", keys).unwrap(), expected);
        }
    }

    #[test]
    fn distribution_matches_percentages() {
        for split in [abc(10.0, 45.0, 45.0), abc(0.0, 50.0, 50.0), abc(33.3, 33.3, 33.4), abc(1.0, 9.0, 90.0)] {
            let got = split.assign("seg", &int_keys(100_000)).unwrap();
            let sh = shares(&names(&got));
            let want = [(HOLDOUT, split.holdout), ("A", split.variants[0].percent), ("B", split.variants[1].percent)];
            for (g, p) in want {
                let s = sh.get(g).copied().unwrap_or(0.0);
                assert!((s - p).abs() < 1.5, "{split:?}: {g} got {s:.2}%, want {p}%");
            }
        }
        // String keys too.
        let text: Vec<String> = (0..100_000).map(|i| format!("user-{i}")).collect();
        let keys: ArrayRef = Arc::new(StringArray::from_iter_values(&text));
        let got = abc(10.0, 45.0, 45.0).assign("seg", &keys).unwrap();
        let sh = shares(&names(&got));
        assert!((sh[HOLDOUT] - 10.0).abs() < 1.5 && (sh["A"] - 45.0).abs() < 1.5, "{sh:?}");
    }

    #[test]
    fn stable_over_simulated_runs() {
        let keys = int_keys(20_000);
        let json =
            r#"{"holdout": 10, "variants": [{"name": "A", "percent": 45}, {"name": "B", "percent": 45}], "salt": "s"}"#;
        let first = serde_json::from_str::<Split>(json).unwrap().assign("vip", &keys).unwrap();
        for run in 0..20 {
            // A fresh definition each run, as after a restart; also a reordered variant list.
            let mut split: Split = serde_json::from_str(json).unwrap();
            if run % 2 == 1 {
                split.variants.reverse();
            }
            assert_eq!(split.assign("vip", &keys).unwrap(), first, "run {run}");
        }
    }

    #[test]
    fn shrinking_b_and_adding_c_only_moves_out_of_b_or_into_c() {
        let keys = int_keys(100_000);
        let before = abc(10.0, 45.0, 45.0).assign("vip", &keys).unwrap();
        let after = abc(10.0, 45.0, 30.0).variant("C", 15.0).assign("vip", &keys).unwrap();
        let (before, after) = (names(&before), names(&after));
        for (b, a) in before.iter().zip(&after) {
            assert!(b == a || *b == "B" || *a == "C", "{b} -> {a}");
        }
        // So nobody from A or the holdout goes to B, and B only loses members.
        let count = |v: &[&str], g: &str| v.iter().filter(|x| **x == g).count() as f64 / v.len() as f64;
        assert!((count(&after, "B") - 0.30).abs() < 0.01 && (count(&after, "C") - 0.15).abs() < 0.01);
        // Expected moved fraction: 1 - Σ_g 1/Σ_h max(p_h/p_g, p'_h/p'_g) = 0.2217 (the minimum would be 0.15).
        let m = moved(&before, &after);
        assert!((m - 0.2217).abs() < 0.01, "moved {m}");
    }

    #[test]
    fn changing_one_group_moves_the_minimum() {
        let keys = int_keys(100_000);
        // Holdout 10 -> 20, A and B keep their ratio: only moves into the holdout, 10 % of members.
        let before = abc(10.0, 45.0, 45.0).assign("vip", &keys).unwrap();
        let after = abc(20.0, 40.0, 40.0).assign("vip", &keys).unwrap();
        let (before, after) = (names(&before), names(&after));
        for (b, a) in before.iter().zip(&after) {
            assert!(b == a || *a == HOLDOUT, "{b} -> {a}");
        }
        let m = moved(&before, &after);
        assert!((m - 0.10).abs() < 0.01, "moved {m}");
        // And back: only moves out of the holdout.
        let back = abc(10.0, 45.0, 45.0).assign("vip", &keys).unwrap();
        assert_eq!(names(&back), before);
    }

    #[test]
    fn adding_a_variant_takes_proportionally() {
        let keys = int_keys(100_000);
        let before = abc(0.0, 50.0, 50.0).assign("vip", &keys).unwrap();
        let after = abc(0.0, 40.0, 40.0).variant("C", 20.0).assign("vip", &keys).unwrap();
        let (before, after) = (names(&before), names(&after));
        for (b, a) in before.iter().zip(&after) {
            assert!(b == a || *a == "C", "{b} -> {a}");
        }
        let m = moved(&before, &after);
        assert!((m - 0.20).abs() < 0.01, "moved {m}");
        let from_a = before.iter().zip(&after).filter(|(b, a)| **b == "A" && **a == "C").count() as f64;
        assert!((from_a / (m * before.len() as f64) - 0.5).abs() < 0.03);
        // Adding it at 0 % changes nothing.
        let zero = abc(0.0, 50.0, 50.0).variant("C", 0.0).assign("vip", &keys).unwrap();
        assert_eq!(names(&zero), before);
    }

    #[test]
    fn salt_and_segment_reshuffle() {
        let keys = int_keys(100_000);
        let s = abc(10.0, 45.0, 45.0);
        let base = s.assign("vip", &keys).unwrap();
        let salted = s.clone().salt("2026-q3").assign("vip", &keys).unwrap();
        let empty_salt = s.clone().salt("").assign("vip", &keys).unwrap();
        let other_segment = s.assign("vip2", &keys).unwrap();
        // Independent assignments agree with probability Σ p² = 0.01 + 2 * 0.2025 = 0.415.
        for other in [&salted, &empty_salt, &other_segment] {
            let m = moved(&names(&base), &names(other));
            assert!((m - 0.585).abs() < 0.01, "moved {m}");
        }
        let m = moved(&names(&salted), &names(&empty_salt));
        assert!((m - 0.585).abs() < 0.01, "moved {m}");
    }

    #[test]
    fn zero_percent_groups_get_nobody() {
        let keys = int_keys(50_000);
        let got = Split::new(0.0).variant("A", 0.0).variant("B", 100.0).assign("z", &keys).unwrap();
        assert!(names(&got).iter().all(|v| *v == "B"));
        let got = Split::new(100.0).variant("A", 0.0).assign("z", &keys).unwrap();
        assert!(names(&got).iter().all(|v| *v == HOLDOUT));
        let got = Split::new(0.0).variant("A", 1e-9).variant("B", 100.0 - 1e-9).assign("z", &keys).unwrap();
        assert!(names(&got).iter().all(|v| *v == "B"));
    }

    #[test]
    fn validation_errors() {
        let p = "segment vip.split";
        let cases = [
            (
                abc(-1.0, 50.0, 51.0),
                "invalid definition of segment vip.split.holdout: must be a finite number >= 0, got -1",
            ),
            (
                abc(f64::NAN, 50.0, 50.0),
                "invalid definition of segment vip.split.holdout: must be a finite number >= 0, got NaN",
            ),
            (
                abc(10.0, 45.0, f64::INFINITY),
                "invalid definition of segment vip.split.variants[1].percent: must be a finite number >= 0, got inf",
            ),
            (
                abc(10.0, 45.0, 40.0),
                "invalid definition of segment vip.split: holdout and variant percentages must add up to exactly 100, \
                 got 95 (holdout 10 + variants 85); there is no implicit remainder group",
            ),
            (
                abc(10.0, 45.0, 50.0),
                "invalid definition of segment vip.split: holdout and variant percentages must add up to exactly 100, \
                 got 105 (holdout 10 + variants 95); there is no implicit remainder group",
            ),
            (Split::new(100.0), "invalid definition of segment vip.split.variants: at least one variant is required"),
            (
                Split::new(0.0).variant("A", 50.0).variant("a b", 50.0),
                "invalid definition of segment vip.split.variants[1].name: variant name \"a b\" must be 1–64 ASCII \
                 letters, digits, `_` or `-`",
            ),
            (
                Split::new(0.0).variant("", 100.0),
                "invalid definition of segment vip.split.variants[0].name: variant name \"\" must be 1–64 ASCII \
                 letters, digits, `_` or `-`",
            ),
            (
                Split::new(0.0).variant("A", 50.0).variant("Holdout", 50.0),
                "invalid definition of segment vip.split.variants[1].name: variant name \"Holdout\" is reserved for \
                 the holdout group; set `holdout` instead",
            ),
            (
                Split::new(0.0).variant("A", 50.0).variant("B", 25.0).variant("A", 25.0),
                "invalid definition of segment vip.split.variants[2].name: duplicate variant name \"A\" (also \
                 variants[0])",
            ),
        ];
        for (split, msg) in cases {
            let err = split.validate(p).unwrap_err();
            assert!(matches!(err, Error::Definition { .. }), "{err:?}");
            assert_eq!(err.to_string(), msg);
        }
        // Accepted: sums within 1e-9, names with `-` and `_`, a 0 % variant.
        abc(33.3, 33.3, 33.4).validate(p).unwrap();
        Split::new(0.0).variant("new-checkout_v2", 100.0).variant("old", 0.0).validate(p).unwrap();
        // assign validates, naming the segment.
        let err = abc(10.0, 45.0, 40.0).assign("vip", &int_keys(3)).unwrap_err();
        assert!(err.to_string().starts_with("invalid definition of segment vip.split: "), "{err}");
    }

    #[test]
    fn bad_keys_are_errors() {
        let s = abc(10.0, 45.0, 45.0);
        let nulls: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
        assert_eq!(
            s.assign("vip", &nulls).unwrap_err().to_string(),
            "invalid argument: split of segment `vip`: 1 of 2 keys are null; keys must not be null"
        );
        let floats: ArrayRef = Arc::new(arrow::array::Float64Array::from(vec![1.0]));
        assert_eq!(
            s.assign("vip", &floats).unwrap_err().to_string(),
            "invalid argument: split of segment `vip`: keys of type Float64 are not supported (use Int32, Int64 or \
             a string type)"
        );
        let empty: ArrayRef = Arc::new(Int64Array::from(Vec::<i64>::new()));
        assert_eq!(s.assign("vip", &empty).unwrap().len(), 0);
    }

    #[test]
    fn million_keys_fast() {
        // The timing bound only means something in release builds (`cargo test --release -p segkit --lib split`).
        let n = if cfg!(debug_assertions) { 100_000 } else { 1_000_000 };
        let keys = int_keys(n);
        let s = abc(10.0, 45.0, 30.0).variant("C", 15.0);
        let t = std::time::Instant::now();
        let got = s.assign("vip", &keys).unwrap();
        let took = t.elapsed();
        assert_eq!(got.len(), n as usize);
        if !cfg!(debug_assertions) {
            assert!(took.as_millis() < 500, "1M keys took {took:?}");
        }
    }
}
