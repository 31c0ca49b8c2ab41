//! `infra/template.yaml` and the local stack describe the same table and the same routes: the
//! table the local stack provisions (read back from moto) matches the template's, and every
//! route of the router is an API Gateway route of the function.

use std::collections::BTreeSet;

use rollcall::store::schema;
use rollcall_e2e::{sdk, unique_table, workspace_root};
use serde_json::Value;

fn template() -> Value {
    let text = std::fs::read_to_string(workspace_root().join("infra/template.yaml"))
        .expect("reading infra/template.yaml");
    serde_norway::from_str(&text).expect("the template is plain YAML (long-form intrinsics)")
}

type KeySchema = Vec<(String, String)>;
type Indexes = BTreeSet<(String, KeySchema, String)>;

/// The parts of a table both sides must agree on.
#[derive(Debug, PartialEq, Eq)]
struct TableShape {
    attributes: BTreeSet<(String, String)>,
    keys: KeySchema,
    indexes: Indexes,
    stream: String,
    billing: String,
    ttl_attribute: String,
}

fn keys_from_template(v: &Value) -> KeySchema {
    v.as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap().to_owned(),
                k["KeyType"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn template_shape(t: &Value) -> TableShape {
    let p = &t["Resources"]["Table"]["Properties"];
    assert_eq!(t["Resources"]["Table"]["Type"], "AWS::DynamoDB::Table");
    TableShape {
        attributes: p["AttributeDefinitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["AttributeName"].as_str().unwrap().to_owned(),
                    a["AttributeType"].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
        keys: keys_from_template(&p["KeySchema"]),
        indexes: p["GlobalSecondaryIndexes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["IndexName"].as_str().unwrap().to_owned(),
                    keys_from_template(&i["KeySchema"]),
                    i["Projection"]["ProjectionType"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                )
            })
            .collect(),
        stream: p["StreamSpecification"]["StreamViewType"]
            .as_str()
            .unwrap()
            .to_owned(),
        billing: p["BillingMode"].as_str().unwrap().to_owned(),
        ttl_attribute: p["TimeToLiveSpecification"]["AttributeName"]
            .as_str()
            .unwrap()
            .to_owned(),
    }
}

#[tokio::test]
async fn the_provisioned_local_table_matches_the_template() {
    let t = template();
    let expected = template_shape(&t);
    let p = &t["Resources"]["Table"]["Properties"];
    assert_eq!(
        p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
        true
    );
    assert_eq!(p["SSESpecification"]["SSEEnabled"], true);
    assert_eq!(p["TimeToLiveSpecification"]["Enabled"], true);

    let client = aws_sdk_dynamodb::Client::new(&sdk().await);
    let table = unique_table();
    schema::create_table(&client, &table).await.unwrap();
    let d = client
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let d = d.table.unwrap();
    let key_schema = |ks: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> KeySchema {
        ks.iter()
            .map(|k| {
                (
                    k.attribute_name().to_owned(),
                    k.key_type().as_str().to_owned(),
                )
            })
            .collect()
    };
    let ttl = client
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let provisioned = TableShape {
        attributes: d
            .attribute_definitions()
            .iter()
            .map(|a| {
                (
                    a.attribute_name().to_owned(),
                    a.attribute_type().as_str().to_owned(),
                )
            })
            .collect(),
        keys: key_schema(d.key_schema()),
        indexes: d
            .global_secondary_indexes()
            .iter()
            .map(|i| {
                (
                    i.index_name().unwrap().to_owned(),
                    key_schema(i.key_schema()),
                    i.projection()
                        .and_then(|p| p.projection_type())
                        .map(|p| p.as_str().to_owned())
                        .unwrap_or_default(),
                )
            })
            .collect(),
        stream: d
            .stream_specification()
            .and_then(|s| s.stream_view_type())
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default(),
        billing: d
            .billing_mode_summary()
            .and_then(|b| b.billing_mode())
            .map(|b| b.as_str().to_owned())
            .unwrap_or_default(),
        ttl_attribute: ttl
            .time_to_live_description()
            .and_then(|t| t.attribute_name())
            .unwrap_or_default()
            .to_owned(),
    };
    assert_eq!(provisioned, expected);

    // And the store's own constants name the same things.
    assert_eq!(
        expected.keys,
        vec![
            (schema::PK.into(), "HASH".into()),
            (schema::SK.into(), "RANGE".into())
        ]
    );
    assert_eq!(expected.ttl_attribute, schema::TTL_ATTRIBUTE);
    let names: BTreeSet<String> = expected.indexes.iter().map(|(n, _, _)| n.clone()).collect();
    let ours: BTreeSet<String> = schema::INDEXES.iter().map(|i| i.name.to_owned()).collect();
    assert_eq!(names, ours);
}

#[test]
fn every_route_of_the_router_is_an_api_gateway_route_of_the_function_and_back() {
    let t = template();
    let f = &t["Resources"]["UsersApiFunction"];
    assert_eq!(f["Metadata"]["BuildMethod"], "rust-cargolambda");
    let globals = &t["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"][0], "arm64");
    let in_template: BTreeSet<(String, String)> = f["Properties"]["Events"]
        .as_object()
        .unwrap()
        .values()
        .filter(|e| e["Type"] == "HttpApi")
        .map(|e| {
            (
                e["Properties"]["Method"].as_str().unwrap().to_uppercase(),
                e["Properties"]["Path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let routed: BTreeSet<(String, String)> = users_api::routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    assert_eq!(in_template, routed);
}

#[test]
fn the_function_policy_names_single_actions_on_the_table_only() {
    let t = template();
    let statements = t["Resources"]["UsersApiFunction"]["Properties"]["Policies"][0]["Statement"]
        .as_array()
        .unwrap()
        .clone();
    for s in statements {
        let actions: Vec<&str> = s["Action"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        assert!(
            actions
                .iter()
                .all(|a| a.starts_with("dynamodb:") && !a.contains('*')),
            "{actions:?}"
        );
        assert!(!s["Resource"].to_string().contains("\"*\""), "{s}");
    }
}
