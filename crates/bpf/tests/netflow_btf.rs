//! The netflow object's records as `netflow.rs` mirrors them, checked against the
//! object's BTF: every mirrored struct has the C struct's size. Needs no kernel. Checks
//! the embedded object and the one RAMPART_NETFLOW_OBJECT names, when set.

use btf_rs::{Btf, Type};
use object::{Object, ObjectSection};
use rampart_bpf::netflow::{MIRRORS, NETFLOW_OBJECT};

fn struct_size(object: &[u8], name: &str) -> Option<usize> {
    let file = object::File::parse(object).expect("an ELF object");
    let section = file.section_by_name(".BTF").expect("a .BTF section");
    let btf = Btf::from_bytes(section.data().expect(".BTF data")).expect(".BTF parses");
    let types = btf.resolve_types_by_name(name).unwrap_or_default();
    types.iter().find_map(|t| match t {
        Type::Struct(s) => Some(s.size()),
        _ => None,
    })
}

#[test]
fn netflow_mirrors_have_the_c_sizes() {
    let mut objects = vec![("embedded".to_string(), NETFLOW_OBJECT.to_vec())];
    if let Some(p) = std::env::var_os("RAMPART_NETFLOW_OBJECT") {
        objects.push((p.to_string_lossy().into_owned(), std::fs::read(&p).unwrap()));
    }
    for (origin, bytes) in objects {
        let wrong: Vec<String> = MIRRORS
            .iter()
            .filter_map(|(name, size)| match struct_size(&bytes, name) {
                Some(c) if c == *size => None,
                Some(c) => Some(format!("{name}: C {c} bytes, Rust {size}")),
                None => Some(format!("{name}: not in the object's BTF")),
            })
            .collect();
        assert!(wrong.is_empty(), "{origin}: {wrong:#?}");
    }
    // A size the C side does not have is caught.
    assert_ne!(
        struct_size(NETFLOW_OBJECT, "flow_key"),
        Some(MIRRORS[0].1 + 8)
    );
}
