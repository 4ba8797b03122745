//! Request shapes → raw matrix, error messages, tie-breaking and response formats.

use serde_json::{Value, json};

use crate::Core;
use crate::request::{Format, Request};
use crate::response::argmax;

const MIXED: &str = r#"{"inputs":[{"name":"a","type":"number"},{"name":"b","type":"number"},
    {"name":"color","type":"category","categories":["blue","red"]}],
    "output":{"name":"y","type":"class","labels":["no","yes"]}}"#;

const IRIS: &str = r#"{"inputs":[{"name":"sepal_length","type":"number"},{"name":"sepal_width","type":"number"},
    {"name":"petal_length","type":"number"},{"name":"petal_width","type":"number"}],
    "output":{"name":"species","type":"class","labels":["setosa","versicolor","virginica"]}}"#;

const REGRESSOR: &str =
    r#"{"inputs":[{"name":"x","type":"number"}],"output":{"name":"target","type":"number"}}"#;

fn core(sig: &str, config: &str) -> Core {
    Core::new(Some(sig), config, "iris-endpoint", Some("3")).unwrap()
}

/// The matrix of the two MIXED rows every shape below encodes.
const EXPECTED: [f32; 6] = [1.5, f32::NAN, 1.0, 2.0, 3.0, -1.0];

fn same(got: &[f32], want: &[f32]) -> bool {
    got.len() == want.len()
        && got
            .iter()
            .zip(want)
            .all(|(g, w)| g == w || (g.is_nan() && w.is_nan()))
}

fn matrix(core: &Core, ct: &str, body: &str) -> Vec<f32> {
    let req = core
        .parse(ct, body.as_bytes())
        .unwrap_or_else(|e| panic!("{body}: {e}"));
    assert_eq!(req.rows * core.sig.width(), req.data.len());
    req.data
}

fn error(core: &Core, ct: &str, body: &str) -> String {
    core.parse(ct, body.as_bytes())
        .unwrap_err()
        .message()
        .to_string()
}

#[test]
fn every_json_shape_gives_the_same_matrix() {
    let c = core(MIXED, "");
    let bodies = [
        r#"{"dataframe_split":{"index":[7,8],"columns":["color","extra","b","a"],"data":[["red",0,null,1.5],["green",0,3,"2"]]}}"#,
        r#"{"dataframe_split":{"data":[[1.5,null,"red"],["2",3,"green"]]}}"#,
        r#"{"dataframe_records":[{"a":1.5,"b":null,"color":"red","extra":"x"},{"a":2,"b":"3","color":"green"}]}"#,
        r#"{"instances":[{"a":1.5,"b":"NA","color":"red"},{"a":2,"b":3,"color":"green"}]}"#,
        r#"{"instances":[[1.5,"",  "red"],[2,3,"green"]]}"#,
        r#"{"inputs":{"a":[1.5,2],"b":[null,3],"color":["red","green"],"extra":5}}"#,
        r#"{"inputs":[[1.5,"nan","red"],[2,3,"green"]]}"#,
        r#"{"columns":["a","b","color"],"data":[[1.5,"None","red"],[2,3,"green"]]}"#,
        r#"[{"a":1.5,"b":null,"color":"red"},{"a":2,"b":3,"color":"green"}]"#,
        r#"[[1.5,null,"red"],[2,3,"green"]]"#,
    ];
    for body in bodies {
        let got = matrix(&c, "application/json", body);
        assert!(same(&got, &EXPECTED), "{body}: {got:?}");
        let got = matrix(&c, "application/json; format=mlflow", body);
        assert!(same(&got, &EXPECTED), "{body}: {got:?}");
    }
}

#[test]
fn single_records_and_flat_rows_are_one_row() {
    let c = core(MIXED, "");
    for body in [
        r#"{"inputs":{"a":1.5,"b":null,"color":"red"}}"#,
        r#"{"instances":[1.5,null,"red"]}"#,
        r#"{"dataframe_records":[{"a":1.5,"b":"N/A","color":"red"}]}"#,
    ] {
        assert!(
            same(&matrix(&c, "application/json", body), &EXPECTED[..3]),
            "{body}"
        );
    }
}

#[test]
fn oip_shapes_give_the_same_matrix() {
    let c = core(MIXED, "");
    let bodies = [
        r#"{"id":"r1","inputs":[{"name":"x","shape":[2,3],"datatype":"BYTES","data":[[1.5,null,"red"],[2,3,"green"]]}]}"#,
        r#"{"inputs":[{"name":"x","shape":[2,3],"datatype":"BYTES","data":[1.5,"NaN","red",2,3,"green"]}]}"#,
        r#"{"inputs":[{"name":"color","shape":[2],"datatype":"BYTES","data":["red","green"]},
            {"name":"a","shape":[2,1],"datatype":"FP32","data":[[1.5],[2]]},
            {"name":"b","shape":[2],"datatype":"FP64","data":[null,3]},
            {"name":"unused","shape":[1],"datatype":"BOOL","data":[true]}]}"#,
    ];
    for body in bodies {
        let req = c
            .parse("application/json; format=oip", body.as_bytes())
            .unwrap();
        assert_eq!(req.format, Format::Oip);
        assert!(same(&req.data, &EXPECTED), "{body}: {:?}", req.data);
    }
    let req = c
        .parse("application/json;format=\"oip\"", bodies[0].as_bytes())
        .unwrap();
    assert_eq!(req.id, Some(json!("r1")));
}

#[test]
fn csv_gives_the_same_matrix() {
    let c = core(MIXED, "");
    for body in [
        "a,b,color\n1.5,,red\n2,3,green\n",
        "\u{feff}\"\",color,a,b\r\n0,red,1.5,NA\r\n1,\"green\",2,3",
    ] {
        assert!(same(&matrix(&c, "text/csv", body), &EXPECTED), "{body}");
        assert!(
            same(&matrix(&c, "text/csv; charset=utf-8", body), &EXPECTED),
            "{body}"
        );
    }
}

#[test]
fn error_messages() {
    let iris = core(IRIS, r#"{"max_rows": 2}"#);
    let takes = "sepal_length, sepal_width, petal_length, petal_width";
    let json = "application/json";
    assert!(
        error(&iris, json, "{").starts_with("request body is not valid JSON: EOF while parsing")
    );
    let shapes = "expected one of dataframe_split, dataframe_records, instances, inputs, or a list of records";
    assert_eq!(error(&iris, json, r#"{"rows": []}"#), shapes);
    assert_eq!(error(&iris, json, "3"), shapes);
    assert_eq!(
        error(
            &iris,
            json,
            r#"{"dataframe_split":{"columns":["sepal_length","sepal_width","petal_length"],"data":[[1,2,3]]}}"#
        ),
        format!("missing feature 'petal_width' (the model takes {takes})")
    );
    assert_eq!(
        error(
            &iris,
            json,
            r#"{"dataframe_records":[{"sepal_length":1,"sepal_width":2,"petal_length":3,"petal_width":4},{"sepal_length":1}]}"#
        ),
        format!("row 2: missing feature 'sepal_width' (the model takes {takes})")
    );
    assert_eq!(
        error(
            &iris,
            json,
            r#"{"inputs":{"sepal_length":[1],"sepal_width":[2],"petal_length":[3]}}"#
        ),
        format!("missing feature 'petal_width' (the model takes {takes})")
    );
    assert_eq!(
        error(&iris, json, r#"{"instances":[[1,2,3,4],[1,2,3]]}"#),
        format!("row 2 has 3 values; the model takes 4 features: {takes}")
    );
    assert_eq!(
        error(&iris, json, r#"{"instances":[[1,2,3,4],[1,"abc",3,4]]}"#),
        "row 2: 'sepal_width' must be a number, got \"abc\""
    );
    assert_eq!(
        error(
            &iris,
            json,
            r#"[{"sepal_length":"abc","sepal_width":2,"petal_length":3,"petal_width":4}]"#
        ),
        "row 1: 'sepal_length' must be a number, got \"abc\""
    );
    assert_eq!(
        error(&iris, json, r#"{"instances":[]}"#),
        "no rows to score"
    );
    assert_eq!(
        error(
            &iris,
            json,
            r#"{"dataframe_split":{"columns":[],"data":[]}}"#
        )
        .split(' ')
        .next(),
        Some("missing")
    );
    assert_eq!(
        error(&iris, json, r#"{"dataframe_records":[]}"#),
        "no rows to score"
    );
    assert_eq!(error(&iris, json, "[]"), "no rows to score");
    assert_eq!(
        error(&iris, json, "[[1,2,3,4],[1,2,3,4],[1,2,3,4]]"),
        "at most 2 rows per request"
    );
    assert_eq!(
        error(
            &iris,
            json,
            r#"{"dataframe_split":{"columns":["sepal_length","sepal_width","petal_length","petal_width"],"data":[[1,2,3,4],[1,2,3]]}}"#
        ),
        "row 2 has 3 values but there are 4 columns"
    );
    assert_eq!(
        error(
            &iris,
            json,
            r#"{"inputs":{"sepal_length":[1,2],"sepal_width":[2],"petal_length":[3],"petal_width":[4]}}"#
        ),
        "column 'sepal_width' has 1 values but 'sepal_length' has 2"
    );
    assert_eq!(
        error(&iris, json, r#"{"instances":[[1,2,3,4],{"a":1}]}"#),
        "row 2: expected a list of 4 values (the model takes sepal_length, sepal_width, petal_length, petal_width), got {\"a\":1}"
    );
    assert_eq!(
        error(&iris, json, r#"{"instances":"x"}"#),
        "'instances' must be a list of records, a list of rows, or an object of columns, got \"x\""
    );
    assert_eq!(
        error(
            &iris,
            "text/csv",
            "sepal_length,sepal_width,petal_length,petal_width\n"
        ),
        "no rows to score"
    );
    assert_eq!(
        error(
            &iris,
            "text/csv",
            "sepal_length,sepal_width,petal_length,petal_width\n1,2,3,4\n1,2,x,4\n"
        ),
        "row 2: 'petal_length' must be a number, got \"x\""
    );
    assert_eq!(
        error(
            &iris,
            "text/csv",
            "sepal_length,sepal_width,petal_length,petal_width\n1,2,3\n"
        ),
        "row 1 has 3 values but the header has 4 columns"
    );
    assert_eq!(
        error(
            &iris,
            "text/csv",
            "sepal_length,sepal_width,petal_length\n1,2,3\n"
        ),
        format!("missing feature 'petal_width' (the model takes {takes})")
    );
    let unsupported = iris
        .parse("application/x-www-form-urlencoded", b"a=1")
        .unwrap_err();
    assert_eq!(
        unsupported,
        crate::error::Error::Unsupported(
            "unsupported content type 'application/x-www-form-urlencoded'; send application/json or text/csv".into()
        )
    );
}

#[test]
fn oip_error_messages() {
    let iris = core(IRIS, "");
    let oip = "application/json; format=oip";
    assert_eq!(
        error(&iris, oip, r#"{"instances":[[1,2,3,4]]}"#),
        "an Open Inference Protocol request needs \"inputs\": [{\"name\", \"shape\", \"datatype\", \"data\"}, ...]"
    );
    assert_eq!(
        error(
            &iris,
            oip,
            r#"{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}"#
        ),
        "input 'x' has shape [1, 3]; the model takes one input of shape [n, 4] (sepal_length, sepal_width, petal_length, petal_width) or one input per feature"
    );
    assert_eq!(
        error(
            &iris,
            oip,
            r#"{"inputs":[{"name":"x","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7]}]}"#
        ),
        "input 'x' has shape [2, 4] but 7 values"
    );
    assert_eq!(
        error(
            &iris,
            oip,
            r#"{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP8","data":[1,2,3,4]}]}"#
        ),
        "input 'x': unsupported datatype 'FP8' (use FP32, FP64, INT32, INT64, BYTES or BOOL)"
    );
    assert_eq!(
        error(
            &iris,
            oip,
            r#"{"inputs":[{"name":"x","shape":[2,4],"datatype":"BYTES","data":[1,2,3,4,5,"y",7,8]}]}"#
        ),
        "row 2: 'sepal_width' must be a number, got \"y\""
    );
    assert_eq!(
        error(
            &iris,
            oip,
            r#"{"inputs":[{"name":"sepal_length","shape":[1],"datatype":"FP32","data":[1]},
            {"name":"sepal_width","shape":[1],"datatype":"FP32","data":[1]},{"name":"petal_length","shape":[1],"datatype":"FP32","data":[1]}]}"#
        ),
        "missing feature 'petal_width' (the model takes sepal_length, sepal_width, petal_length, petal_width)"
    );
    assert_eq!(
        error(
            &iris,
            oip,
            r#"{"inputs":[{"name":"sepal_length","shape":[2],"datatype":"FP32","data":[1,2]},
            {"name":"sepal_width","shape":[1],"datatype":"FP32","data":[1]},{"name":"petal_length","shape":[1],"datatype":"FP32","data":[1]},
            {"name":"petal_width","shape":[1],"datatype":"FP32","data":[1]}]}"#
        ),
        "input 'sepal_width' has 1 rows but 'sepal_length' has 2"
    );
    assert_eq!(
        error(
            &iris,
            oip,
            r#"{"inputs":[{"name":"x","shape":[0,4],"datatype":"FP32","data":[]}]}"#
        ),
        "no rows to score"
    );
}

#[test]
fn ties_pick_the_last_maximum() {
    assert_eq!(argmax(&[0.2, 0.4, 0.4]), 2);
    assert_eq!(argmax(&[0.5, 0.5, 0.0]), 1);
    assert_eq!(argmax(&[0.9, 0.05, 0.05]), 0);
    assert_eq!(argmax(&[0.25; 4]), 3);
    let expected = [0.2f32, 0.4, 0.4]
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    assert_eq!(argmax(&[0.2, 0.4, 0.4]), expected);
}

fn respond(
    core: &Core,
    format: Format,
    id: Option<Value>,
    rows: usize,
    output: &[f32],
    shape: &[u64],
) -> Value {
    let req = Request {
        format,
        rows,
        data: vec![0.0; rows * core.sig.width()],
        id,
    };
    let body = core.responder.respond(&req, output, shape).unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn default_response_of_a_classifier() {
    let c = core(IRIS, "");
    let out = [0.9, 0.05, 0.05, 0.1, 0.45, 0.45];
    let req = Request {
        format: Format::Default,
        rows: 2,
        data: vec![0.0; 8],
        id: None,
    };
    let body = String::from_utf8(c.responder.respond(&req, &out, &[2, 3]).unwrap()).unwrap();
    assert_eq!(
        body,
        r#"{"predictions":["setosa","virginica"],"probabilities":[{"setosa":0.9,"versicolor":0.05,"virginica":0.05},{"setosa":0.1,"versicolor":0.45,"virginica":0.45}]}"#
    );
    let quiet = core(IRIS, r#"{"probabilities": false}"#);
    assert_eq!(
        respond(&quiet, Format::Default, None, 2, &out, &[2, 3]),
        json!({"predictions": ["setosa", "virginica"]})
    );
}

#[test]
fn default_response_of_a_regressor() {
    let c = core(REGRESSOR, "");
    let req = Request {
        format: Format::Default,
        rows: 3,
        data: vec![0.0; 3],
        id: None,
    };
    let body = c
        .responder
        .respond(&req, &[1.5, 0.1, f32::NAN], &[3, 1])
        .unwrap();
    assert_eq!(
        String::from_utf8(body).unwrap(),
        r#"{"predictions":[1.5,0.1,null]}"#
    );
    let body = c.responder.respond(&req, &[1.0, 2.0, 3.0], &[3]).unwrap();
    assert_eq!(
        String::from_utf8(body).unwrap(),
        r#"{"predictions":[1.0,2.0,3.0]}"#
    );
}

#[test]
fn oip_responses() {
    let c = core(IRIS, "");
    let out = [0.9, 0.05, 0.05, 0.1, 0.45, 0.45];
    assert_eq!(
        respond(&c, Format::Oip, Some(json!("req-1")), 2, &out, &[2, 3]),
        json!({"model_name": "iris-endpoint", "model_version": "3", "id": "req-1", "outputs": [
            {"name": "predictions", "shape": [2], "datatype": "BYTES", "data": ["setosa", "virginica"]},
            {"name": "probabilities", "shape": [2, 3], "datatype": "FP32", "data": [0.9, 0.05, 0.05, 0.1, 0.45, 0.45]}
        ]})
    );
    let r = Core::new(Some(REGRESSOR), "{}", "m", None).unwrap();
    let one = r#"{"inputs":[{"name":"input-0","shape":[3],"datatype":"INT64","data":[1,2,3]}]}"#;
    assert_eq!(
        r.parse("application/json; format=oip", one.as_bytes())
            .unwrap()
            .data,
        [1.0, 2.0, 3.0]
    );
    let req = Request {
        format: Format::Oip,
        rows: 2,
        data: vec![0.0; 2],
        id: None,
    };
    let body = r.responder.respond(&req, &[0.1, 2.5], &[2, 1]).unwrap();
    assert_eq!(
        String::from_utf8(body).unwrap(),
        r#"{"model_name":"m","outputs":[{"name":"predictions","shape":[2],"datatype":"FP32","data":[0.1,2.5]}]}"#
    );
}

#[test]
fn a_model_breaking_its_contract_is_internal() {
    let c = core(IRIS, "");
    let req = Request {
        format: Format::Default,
        rows: 2,
        data: vec![0.0; 8],
        id: None,
    };
    let err = c.responder.respond(&req, &[0.5; 4], &[2, 2]).unwrap_err();
    assert_eq!(
        err,
        crate::error::Error::Internal(
            "the model returned shape [2, 2] (4 values); expected [2, 3]".into()
        )
    );
}

#[test]
fn open_errors() {
    assert_eq!(
        Core::new(None, "", "m", None).unwrap_err().message(),
        "the deployment's model has no signature (config key model.signature)"
    );
    assert!(Core::new(Some(IRIS), "{\"max_rows\": -1}", "m", None).is_err());
}
