//! The wire format as `wire.rs` reads it, checked against the compiled object's BTF
//! (as tetragon's `pkg/alignchecker` checks its Go mirrors): each record struct's size
//! and its members' offsets and sizes, and the values of the kinds and flags. Needs no
//! kernel or root. Checks the embedded (committed) object, and the one
//! RAMPART_BPF_OBJECT names (scripts/test: the object `make -C bpf rebuild` just built),
//! so a change to either side that the other does not follow fails here.

use btf_rs::{Btf, BtfType, Type};
use object::{Object, ObjectSection};
use rampart_bpf::wire;

/// A struct's layout: name, size, and (member, offset, size) in order.
#[derive(Clone, Debug)]
struct Layout {
    name: String,
    size: usize,
    fields: Vec<(String, usize, usize)>,
}

/// Enumerators by C name, with their values.
type Enumerators = Vec<(String, u64)>;

/// An enum's values by C name.
struct Values {
    name: &'static str,
    values: Enumerators,
}

/// The Rust side, from wire.rs's tables (kind names get C's `K_` prefix).
fn rust_side() -> (Vec<Layout>, Vec<Values>) {
    let layouts = wire::LAYOUTS
        .iter()
        .map(|l| Layout {
            name: l.name.to_string(),
            size: l.size,
            fields: l
                .fields
                .iter()
                .map(|f| (f.name.to_string(), f.offset, f.size))
                .collect(),
        })
        .collect();
    let named = |table: &[(&str, u64)], prefix: &str| {
        table
            .iter()
            .map(|(n, v)| (format!("{prefix}{n}"), *v))
            .collect()
    };
    let kinds: Vec<(&str, u64)> = wire::kind::ALL
        .iter()
        .map(|(n, v)| (*n, u64::from(*v)))
        .collect();
    let enums = vec![
        Values {
            name: "rampart_kind",
            values: named(&kinds, "K_"),
        },
        Values {
            name: "rampart_event_flags",
            values: named(wire::EVENT_FLAGS, ""),
        },
        Values {
            name: "rampart_exec_flags",
            values: named(wire::EXEC_FLAGS, ""),
        },
    ];
    (layouts, enums)
}

/// The objects to check: the embedded one, and RAMPART_BPF_OBJECT's when set.
fn objects() -> Vec<(String, Vec<u8>)> {
    let mut objects = vec![(
        "the embedded object (crates/bpf/obj)".to_string(),
        rampart_bpf::OBJECT.to_vec(),
    )];
    if let Some(path) = std::env::var_os("RAMPART_BPF_OBJECT") {
        let bytes = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("RAMPART_BPF_OBJECT={}: {e}", path.display()));
        objects.push((path.to_string_lossy().into_owned(), bytes));
    }
    objects
}

/// The object's .BTF section (it survives `llvm-strip -g`: it is not debug info).
fn btf_of(object: &[u8]) -> Btf {
    let file = object::File::parse(object).expect("an ELF object");
    let section = file.section_by_name(".BTF").expect("a .BTF section");
    Btf::from_bytes(section.data().expect(".BTF data")).expect(".BTF parses")
}

fn chained(btf: &Btf, t: &dyn BtfType) -> Type {
    btf.resolve_chained_type(t).expect("a resolvable type")
}

/// A type's size in bytes, through typedefs and qualifiers.
fn type_size(btf: &Btf, t: &Type) -> usize {
    match t {
        Type::Int(i) => i.size(),
        Type::Enum(e) => e.size(),
        Type::Enum64(e) => e.size(),
        Type::Struct(s) | Type::Union(s) => s.size(),
        Type::Ptr(_) => 8,
        Type::Array(a) => a.len() * type_size(btf, &chained(btf, a)),
        Type::Typedef(_) | Type::Volatile(_) | Type::Const(_) | Type::Restrict(_) => {
            let inner = t.as_btf_type().expect("a chained type");
            type_size(btf, &chained(btf, inner))
        }
        other => panic!("no size for {}", other.name()),
    }
}

/// The C side of the structs and enums the Rust side names, as BTF has them.
fn c_side(
    btf: &Btf,
    layouts: &[Layout],
    enums: &[Values],
) -> (Vec<Option<Layout>>, Vec<Option<Enumerators>>) {
    let structs = layouts
        .iter()
        .map(|l| {
            let types = btf.resolve_types_by_name(&l.name).unwrap_or_default();
            let s = types.iter().find_map(|t| match t {
                Type::Struct(s) => Some(s),
                _ => None,
            })?;
            let fields = s
                .members
                .iter()
                .map(|m| {
                    assert!(m.bitfield_size().is_none(), "{}: a bitfield", l.name);
                    let name = btf.resolve_name(m).expect("member name");
                    let size = type_size(btf, &chained(btf, m));
                    (name, (m.bit_offset() / 8) as usize, size)
                })
                .collect();
            Some(Layout {
                name: l.name.clone(),
                size: s.size(),
                fields,
            })
        })
        .collect();
    let values = enums
        .iter()
        .map(|e| {
            let types = btf.resolve_types_by_name(e.name).unwrap_or_default();
            let en = types.iter().find_map(|t| match t {
                Type::Enum(en) => Some(en),
                _ => None,
            })?;
            Some(
                en.members
                    .iter()
                    .map(|m| {
                        let name = btf.resolve_name(m).expect("enumerator name");
                        (name, u64::from(m.val()))
                    })
                    .collect(),
            )
        })
        .collect();
    (structs, values)
}

/// Every disagreement between the two sides, in words.
fn mismatches(btf: &Btf, layouts: &[Layout], enums: &[Values]) -> Vec<String> {
    let (structs, values) = c_side(btf, layouts, enums);
    let mut out = Vec::new();
    for (rust, c) in layouts.iter().zip(structs) {
        let Some(c) = c else {
            out.push(format!("struct {} is not in the object's BTF", rust.name));
            continue;
        };
        if rust.size != c.size {
            out.push(format!(
                "struct {}: {} bytes in C, {} in wire.rs",
                rust.name, c.size, rust.size
            ));
        }
        // In order, so a member added, removed or moved on one side shows.
        let n = rust.fields.len().max(c.fields.len());
        for i in 0..n {
            match (rust.fields.get(i), c.fields.get(i)) {
                (Some(r), Some(c)) if r == c => {}
                (r, c) => out.push(format!(
                    "struct {} member {i}: C has {c:?}, wire.rs {r:?} (name, offset, size)",
                    rust.name
                )),
            }
        }
    }
    for (rust, c) in enums.iter().zip(values) {
        let Some(mut c) = c else {
            out.push(format!("enum {} is not in the object's BTF", rust.name));
            continue;
        };
        let mut r = rust.values.clone();
        c.sort();
        r.sort();
        let only_c: Vec<_> = c.iter().filter(|v| !r.contains(v)).collect();
        let only_rust: Vec<_> = r.iter().filter(|v| !c.contains(v)).collect();
        if !only_c.is_empty() || !only_rust.is_empty() {
            out.push(format!(
                "enum {}: only in C {only_c:?}, only in wire.rs {only_rust:?}",
                rust.name
            ));
        }
    }
    out
}

#[test]
fn wire_rs_matches_the_objects_btf() {
    let (layouts, enums) = rust_side();
    assert!(layouts.iter().any(|l| l.name == "ev_hdr"));
    for (what, bytes) in objects() {
        let found = mismatches(&btf_of(&bytes), &layouts, &enums);
        assert!(
            found.is_empty(),
            "wire.rs and bpf/rampart.h disagree in {what}:\n{}",
            found.join("\n")
        );
    }
}

/// The check itself catches a shifted member, a wrong size and a renumbered kind (so
/// the test above cannot pass by comparing nothing).
#[test]
fn a_shifted_member_or_a_renumbered_kind_is_caught() {
    let (layouts, enums) = rust_side();
    let btf = btf_of(rampart_bpf::OBJECT);
    let hdr = layouts
        .iter()
        .position(|l| l.name == "ev_hdr")
        .expect("ev_hdr");

    let mut shifted = layouts.clone();
    shifted[hdr].fields[2].1 += 4;
    let found = mismatches(&btf, &shifted, &enums);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("tgid"), "{found:?}");

    let mut resized = layouts.clone();
    resized[hdr].size += 8;
    assert_eq!(mismatches(&btf, &resized, &enums).len(), 1);

    let mut renumbered = rust_side().1;
    renumbered[0].values[0].1 += 100;
    let found = mismatches(&btf, &layouts, &renumbered);
    assert!(found.len() == 1 && found[0].contains("K_EXEC"), "{found:?}");
}
