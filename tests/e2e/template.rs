//! `infra/template.yaml` and the local stack describe the same table and the same routes: the
//! table the local stack provisions (read back from moto) matches the template's, and every
//! route of the router is an API Gateway route of the function.
//!
//! Over 600 lines: one file for every check of the template against the code and the local
//! stack.

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
    assert_eq!(globals["Architectures"][0]["Ref"], "Architecture");
    assert_eq!(t["Parameters"]["Architecture"]["Default"], "arm64");
    let http_events = |function: &str| -> BTreeSet<(String, String)> {
        t["Resources"][function]["Properties"]["Events"]
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
            .collect()
    };
    let routed: BTreeSet<(String, String)> = users_api::routes()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    assert_eq!(http_events("UsersApiFunction"), routed);
    let auth_routes: BTreeSet<(String, String)> = auth::routes()
        .iter()
        .map(|(m, p, _)| (m.to_string(), (*p).to_owned()))
        .collect();
    assert_eq!(http_events("AuthFunction"), auth_routes);
    assert_eq!(
        t["Resources"]["AuthFunction"]["Metadata"]["BuildProperties"]["Binary"],
        "auth"
    );
    // Every route the sign-in path takes has its own throttling bounds.
    let settings = &t["Resources"]["HttpApi"]["Properties"]["RouteSettings"];
    for route in [
        "GET /t/{tenant}/authorize",
        "POST /t/{tenant}/signin",
        "POST /t/{tenant}/token",
    ] {
        assert!(
            settings[route]["ThrottlingRateLimit"].as_u64().unwrap() >= 1000,
            "{route}"
        );
    }
}

#[test]
fn every_function_policy_names_single_actions_on_named_resources() {
    let t = template();
    let resources = t["Resources"].as_object().unwrap();
    let functions: Vec<_> = resources
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::Serverless::Function")
        .collect();
    assert_eq!(
        functions.len(),
        5,
        "users-api, auth, send-invitations, bulk-import, billing-snapshot"
    );
    for (name, f) in functions {
        let statements = f["Properties"]["Policies"][0]["Statement"]
            .as_array()
            .unwrap();
        for s in statements {
            let actions: Vec<&str> = match &s["Action"] {
                Value::String(a) => vec![a.as_str()],
                Value::Array(a) => a.iter().map(|a| a.as_str().unwrap()).collect(),
                other => panic!("{name}: {other}"),
            };
            assert!(
                actions.iter().all(|a| !a.contains('*')),
                "{name}: {actions:?}"
            );
            assert!(!s["Resource"].to_string().contains("\"*\""), "{name}: {s}");
        }
    }
}

#[test]
fn billing_runs_hourly_on_the_first_two_days_in_tokyo_with_retries_and_a_dead_letter_queue() {
    let t = template();
    let f = &t["Resources"]["BillingSnapshotFunction"]["Properties"];
    let schedule = &f["Events"]["MonthEnd"];
    assert_eq!(schedule["Type"], "ScheduleV2");
    let p = &schedule["Properties"];
    assert_eq!(p["ScheduleExpressionTimezone"], "Asia/Tokyo");
    assert_eq!(p["ScheduleExpression"], "cron(5 * 1,2 * ? *)");
    assert_eq!(p["DeadLetterConfig"]["Type"], "SQS");
    assert!(p["RetryPolicy"]["MaximumRetryAttempts"].as_u64().unwrap() > 0);
    // The scheduled payload is what the handler takes as the schedule's run.
    let input: billing_snapshot::SnapshotRequest =
        serde_json::from_str(p["Input"].as_str().unwrap()).unwrap();
    assert!(!input.is_redrive());
    assert_eq!(f["EventInvokeConfig"]["MaximumRetryAttempts"], 2);
}

#[tokio::test]
async fn the_provisioned_local_bucket_matches_the_template() {
    let t = template();
    let p = &t["Resources"]["Bucket"]["Properties"];
    let block = &p["PublicAccessBlockConfiguration"];
    let sse = &p["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        ["SSEAlgorithm"];

    let name = unique_table();
    let bucket = rollcall_cli::local::provision_bucket(&sdk().await, &name)
        .await
        .unwrap();
    let s3 = bucket.client();
    let got = s3
        .get_public_access_block()
        .bucket(&name)
        .send()
        .await
        .unwrap();
    let got = got.public_access_block_configuration().unwrap();
    for (field, value) in [
        ("BlockPublicAcls", got.block_public_acls()),
        ("BlockPublicPolicy", got.block_public_policy()),
        ("IgnorePublicAcls", got.ignore_public_acls()),
        ("RestrictPublicBuckets", got.restrict_public_buckets()),
    ] {
        assert_eq!(block[field], true, "{field} in the template");
        assert_eq!(value, Some(true), "{field} provisioned");
    }
    let enc = s3
        .get_bucket_encryption()
        .bucket(&name)
        .send()
        .await
        .unwrap();
    let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
    let algorithm = rule
        .apply_server_side_encryption_by_default()
        .unwrap()
        .sse_algorithm()
        .as_str();
    assert_eq!(sse, algorithm);
}

fn number(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test]
async fn uploads_reach_bulk_import_through_a_queue_that_outwaits_it_as_provisioned_locally() {
    let t = template();
    let r = &t["Resources"];
    let f = &r["BulkImportFunction"]["Properties"];
    let event = &f["Events"]["Uploads"];
    assert_eq!(event["Type"], "SQS");
    assert_eq!(event["Properties"]["Queue"]["Fn::GetAtt"][0], "ImportQueue");
    assert_eq!(event["Properties"]["BatchSize"], 1);
    assert_eq!(
        event["Properties"]["FunctionResponseTypes"][0],
        "ReportBatchItemFailures"
    );
    // A message comes back only after its invocation is over, and the job's lease outlives
    // that, so a resumed job finds its own lock.
    let queue = &r["ImportQueue"]["Properties"];
    let timeout = number(&f["Timeout"]);
    let visibility = number(&queue["VisibilityTimeout"]);
    let env = &f["Environment"]["Variables"];
    let lease = number(&env["IMPORT_LOCK_LEASE_SECONDS"]);
    assert!(
        visibility > timeout && lease > visibility,
        "{timeout} {visibility} {lease}"
    );
    assert_eq!(
        queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0],
        "ImportDeadLetters"
    );
    assert_eq!(
        number(&queue["RedrivePolicy"]["maxReceiveCount"]),
        u64::from(rollcall_cli::queue::MAX_RECEIVE_COUNT)
    );
    assert_eq!(
        number(&env["IMPORT_MAX_BYTES"]),
        bulk_import::DEFAULT_MAX_BYTES
    );
    assert_eq!(
        number(&env["IMPORT_MAX_ROWS"]),
        bulk_import::DEFAULT_MAX_ROWS as u64
    );

    // The bucket notifies the queue of imports/*.csv, and the local stack does the same.
    let notification =
        &r["Bucket"]["Properties"]["NotificationConfiguration"]["QueueConfigurations"][0];
    assert_eq!(notification["Queue"]["Fn::GetAtt"][0], "ImportQueue");
    let rules: BTreeSet<(String, String)> = notification["Filter"]["S3Key"]["Rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            (
                rule["Name"].as_str().unwrap().to_lowercase(),
                rule["Value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let sdk = sdk().await;
    let name = unique_table();
    let bucket = rollcall_cli::local::provision_bucket(&sdk, &name)
        .await
        .unwrap();
    rollcall_cli::queue::provision_import_queue(&sdk, &bucket, &name)
        .await
        .unwrap();
    let got = bucket
        .client()
        .get_bucket_notification_configuration()
        .bucket(&name)
        .send()
        .await
        .unwrap();
    let local = &got.queue_configurations()[0];
    assert_eq!(
        local
            .events()
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>(),
        [notification["Event"].as_str().unwrap()]
    );
    let local_rules: BTreeSet<(String, String)> = local
        .filter()
        .and_then(|f| f.key())
        .map(|k| k.filter_rules())
        .unwrap_or_default()
        .iter()
        .map(|rule| {
            (
                rule.name()
                    .map(|n| n.as_str().to_lowercase())
                    .unwrap_or_default(),
                rule.value().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(local_rules, rules);
}

#[test]
fn every_dead_letter_queue_function_and_failed_import_has_an_alarm() {
    let t = template();
    let resources = t["Resources"].as_object().unwrap();
    let of_type = |ty: &str| -> BTreeSet<String> {
        resources
            .iter()
            .filter(|(_, r)| r["Type"] == ty)
            .map(|(name, _)| name.clone())
            .collect()
    };
    let alarms: Vec<&Value> = resources
        .values()
        .filter(|r| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|r| &r["Properties"])
        .collect();
    for alarm in &alarms {
        assert_eq!(alarm["AlarmActions"][0]["Ref"], "AlarmTopic", "{alarm}");
        assert_eq!(alarm["TreatMissingData"], "notBreaching", "{alarm}");
    }
    let watched = |namespace: &str, metric: &str| -> BTreeSet<String> {
        alarms
            .iter()
            .filter(|a| a["Namespace"] == namespace && a["MetricName"] == metric)
            .map(|a| {
                let v = &a["Dimensions"][0]["Value"];
                v["Ref"]
                    .as_str()
                    .or_else(|| v["Fn::GetAtt"][0].as_str())
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    // Every queue that holds failures (every queue but the import queue itself).
    let mut dead_letters = of_type("AWS::SQS::Queue");
    dead_letters.remove("ImportQueue");
    assert_eq!(dead_letters.len(), 3);
    assert_eq!(
        watched("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        dead_letters
    );
    let functions = of_type("AWS::Serverless::Function");
    assert_eq!(functions.len(), 5);
    assert_eq!(watched("AWS/Lambda", "Errors"), functions);
    assert_eq!(watched("AWS/Lambda", "Throttles"), functions);

    // The failure metrics count the lines the functions write when a job or an invitation
    // ends FAILED, each alarmed.
    for (resource, file, lines) in [
        ("ImportJobFailuresMetric", "functions/bulk-import/src", 2),
        (
            "InvitationFailuresMetric",
            "functions/send-invitations/src",
            2,
        ),
    ] {
        let filter = &resources[resource]["Properties"];
        let pattern = filter["FilterPattern"].as_str().unwrap();
        let message = pattern
            .split('"')
            .nth(1)
            .expect("a quoted message in the pattern");
        // Every source file of the function.
        let source: String = std::fs::read_dir(workspace_root().join(file))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "rs"))
            .map(|path| std::fs::read_to_string(path).unwrap())
            .collect();
        assert_eq!(
            source.matches(&format!("\"{message}\"")).count(),
            lines,
            "every way of failing logs {message:?} in {file}"
        );
        let metric = &filter["MetricTransformations"][0];
        assert!(
            alarms
                .iter()
                .any(|a| a["Namespace"] == metric["MetricNamespace"]
                    && a["MetricName"] == metric["MetricName"]),
            "{resource} has an alarm"
        );
    }
}

/// The trigger a sample event of `events/` is shaped for.
fn sample_trigger(event: &Value) -> &'static str {
    if event["requestContext"]["http"].is_object() {
        return "HttpApi";
    }
    match event["Records"][0]["eventSource"].as_str() {
        Some("aws:dynamodb") => "DynamoDB",
        Some("aws:sqs") => "SQS",
        _ => "ScheduleV2",
    }
}

/// Whether `event` matches an EventBridge-style filter `pattern` (the subset the template
/// uses: nested objects, lists of literals, and `{"prefix": …}`).
fn matches_filter(pattern: &Value, event: &Value) -> bool {
    pattern
        .as_object()
        .expect("a pattern is an object")
        .iter()
        .all(|(key, want)| {
            let got = &event[key];
            match want {
                Value::Object(_) => matches_filter(want, got),
                Value::Array(options) => options.iter().any(|o| match o["prefix"].as_str() {
                    Some(prefix) => got.as_str().is_some_and(|s| s.starts_with(prefix)),
                    None => o == got,
                }),
                _ => panic!("unsupported pattern {want}"),
            }
        })
}

#[test]
fn every_trigger_of_every_function_has_a_sample_event_that_a_test_runs() {
    let t = template();
    let root = workspace_root();
    let mut samples: Vec<(String, Value)> = std::fs::read_dir(root.join("events"))
        .expect("events/")
        .map(|e| {
            e.expect("an entry")
                .file_name()
                .into_string()
                .expect("UTF-8")
        })
        .filter(|name| name.ends_with(".json"))
        .map(|name| {
            let text = std::fs::read_to_string(root.join("events").join(&name)).expect("read");
            let event = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name, event)
        })
        .collect();
    samples.sort_by(|a, b| a.0.cmp(&b.0));
    let tests: String = std::fs::read_dir(root.join("tests/e2e"))
        .expect("tests/e2e")
        .map(|e| std::fs::read_to_string(e.expect("an entry").path()).expect("read"))
        .collect();

    let mut covered = BTreeSet::new();
    for (_, resource) in t["Resources"].as_object().expect("resources") {
        if resource["Type"] != "AWS::Serverless::Function" {
            continue;
        }
        let binary = resource["Metadata"]["BuildProperties"]["Binary"]
            .as_str()
            .expect("every function names its binary");
        assert!(
            root.join("functions").join(binary).is_dir(),
            "{binary} is not under functions/"
        );
        let ours: Vec<&(String, Value)> = samples
            .iter()
            .filter(|(name, _)| name.starts_with(&format!("{binary}-")))
            .collect();
        for (event_name, event) in resource["Properties"]["Events"]
            .as_object()
            .expect("every function has events")
        {
            let kind = event["Type"].as_str().expect("an event type");
            let same_kind: Vec<_> = ours
                .iter()
                .filter(|(_, sample)| sample_trigger(sample) == kind)
                .collect();
            assert!(
                !same_kind.is_empty(),
                "{binary}'s {event_name} ({kind}) has no sample in events/"
            );
            for (name, sample) in &same_kind {
                covered.insert(name.clone());
                // A schedule's sample is the very input the schedule sends, or a re-drive.
                if let Some(input) = event["Properties"]["Input"].as_str() {
                    let input: Value = serde_json::from_str(input).expect("Input is JSON");
                    assert!(
                        same_kind.iter().any(|(_, s)| *s == input),
                        "no sample is {event_name}'s input {input}"
                    );
                }
                // A stream sample holds only records the mapping's filter lets through.
                for filter in event["Properties"]["FilterCriteria"]["Filters"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let pattern: Value =
                        serde_json::from_str(filter["Pattern"].as_str().expect("a pattern"))
                            .expect("the pattern is JSON");
                    for record in sample["Records"].as_array().expect("records") {
                        assert!(
                            matches_filter(&pattern, record),
                            "{name}: a record the filter would drop: {record}"
                        );
                    }
                }
            }
        }
    }
    for (name, _) in &samples {
        assert!(
            covered.contains(name),
            "{name} matches no function's trigger"
        );
        assert!(
            tests.contains(&format!("\"{name}\"")),
            "no end-to-end test runs {name}"
        );
    }
}
