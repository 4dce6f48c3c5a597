//! The contract's descriptors, decoded once from [`rampart_proto::DESCRIPTOR_SET`]:
//! what each RPC takes and returns and each message's fields, for the HTTP adapter
//! (typing query parameters) and the OpenAPI document.

use std::collections::HashMap;
use std::sync::OnceLock;

use prost::Message;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};

pub struct Descriptors {
    /// By full name without the leading dot (`rampart.v1.Alert`).
    pub messages: HashMap<String, DescriptorProto>,
    pub enums: HashMap<String, EnumDescriptorProto>,
    /// `Service.Rpc` → (input, output, server streaming), full names without the dot.
    pub rpcs: HashMap<String, (String, String, bool)>,
    /// Leading comments by message or `Message.field` full name.
    pub docs: HashMap<String, String>,
}

fn walk_messages(
    prefix: &str,
    msgs: &[DescriptorProto],
    out: &mut Descriptors,
    path: Vec<i32>,
    comments: &HashMap<Vec<i32>, String>,
) {
    for (i, m) in msgs.iter().enumerate() {
        let name = format!("{prefix}.{}", m.name());
        let mut mp = path.clone();
        mp.push(i as i32);
        if let Some(c) = comments.get(&mp) {
            out.docs.insert(name.clone(), c.clone());
        }
        for (fi, f) in m.field.iter().enumerate() {
            let mut fp = mp.clone();
            fp.extend([2, fi as i32]);
            if let Some(c) = comments.get(&fp) {
                out.docs.insert(format!("{name}.{}", f.name()), c.clone());
            }
        }
        for e in &m.enum_type {
            out.enums.insert(format!("{name}.{}", e.name()), e.clone());
        }
        let mut nested = mp.clone();
        nested.push(3);
        walk_messages(&name, &m.nested_type, out, nested, comments);
        out.messages.insert(name, m.clone());
    }
}

impl Descriptors {
    fn load() -> Self {
        let mut d = Descriptors {
            messages: HashMap::new(),
            enums: HashMap::new(),
            rpcs: HashMap::new(),
            docs: HashMap::new(),
        };
        let Ok(fds) = FileDescriptorSet::decode(rampart_proto::DESCRIPTOR_SET) else {
            return d;
        };
        let strip = |s: &str| s.trim_start_matches('.').to_string();
        for f in &fds.file {
            let pkg = f.package();
            let comments: HashMap<Vec<i32>, String> = f
                .source_code_info
                .iter()
                .flat_map(|s| s.location.iter())
                .filter_map(|l| {
                    let c = l.leading_comments().trim();
                    (!c.is_empty()).then(|| (l.path.clone(), c.replace('\n', " ")))
                })
                .collect();
            walk_messages(pkg, &f.message_type, &mut d, vec![4], &comments);
            for e in &f.enum_type {
                d.enums.insert(format!("{pkg}.{}", e.name()), e.clone());
            }
            for s in &f.service {
                for m in &s.method {
                    d.rpcs.insert(
                        format!("{}.{}", s.name(), m.name()),
                        (
                            strip(m.input_type()),
                            strip(m.output_type()),
                            m.server_streaming(),
                        ),
                    );
                }
            }
        }
        d
    }

    pub fn get() -> &'static Descriptors {
        static D: OnceLock<Descriptors> = OnceLock::new();
        D.get_or_init(Descriptors::load)
    }
}
