//! `cargo bench -p rampart-netflow`: graph query (5,000 nodes, 50,000 edges) and flow
//! aggregation rates, each against its baseline in the same run, printed as JSON.

fn main() {
    let size = rampart_netflow::bench::SizeConfig::default();
    let graph = rampart_netflow::bench::graph_bench(&size);
    let aggregation = rampart_netflow::bench::aggregation_bench(&size);
    println!(
        "{}",
        serde_json::json!({ "graph": graph, "aggregation": aggregation })
    );
}
