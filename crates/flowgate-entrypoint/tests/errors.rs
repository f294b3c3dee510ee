//! Refusals: each names the file, the function and, for syntax, line and column.

use flowgate_entrypoint::{read_flow, EntrypointError};

const FLOWS: &str =
    "from prefect import flow\n\n\ndef helper(x: int):\n    return x\n\n\n@flow\ndef etl(days: int = 1):\n    pass\n";

#[test]
fn missing_function_names_function_and_file() {
    let error = read_flow("flows/etl.py", FLOWS, "report").unwrap_err();
    assert!(matches!(error, EntrypointError::FunctionNotFound { .. }), "{error:?}");
    assert_eq!(error.to_string(), "Function `report` is not defined at the top level of `flows/etl.py`");
}

#[test]
fn undecorated_function_is_not_a_flow() {
    let error = read_flow("flows/etl.py", FLOWS, "helper").unwrap_err();
    assert_eq!(error.to_string(), "Function `helper` in `flows/etl.py` is not decorated with Prefect's `@flow`");
}

#[test]
fn a_decorator_named_flow_from_elsewhere_is_not_prefects() {
    let source = "from mylib import flow\n\n@flow\ndef etl():\n    pass\n";
    let error = read_flow("flows/etl.py", source, "etl").unwrap_err();
    assert!(matches!(error, EntrypointError::NotAFlow { .. }), "{error:?}");
}

#[test]
fn syntax_error_reports_line_and_column() {
    let source = "from prefect import flow\n\n@flow\ndef etl(days: int = 1\n    pass\n";
    let error = read_flow("flows/etl.py", source, "etl").unwrap_err();
    let EntrypointError::Syntax { line, column, ref file, .. } = error else {
        panic!("expected a syntax error, got {error:?}");
    };
    assert_eq!((file.as_str(), line, column), ("flows/etl.py", 5, 5));
    assert!(
        error.to_string().starts_with("Failed to parse `flows/etl.py`: syntax error at line 5, column 5"),
        "{error}"
    );
}

#[test]
fn imported_model_asks_for_a_configured_schema() {
    let source =
        "from prefect import flow\nfrom app.models import Config\n\n@flow\ndef etl(\n    cfg: Config,\n):\n    pass\n";
    let error = read_flow("flows/etl.py", source, "etl").unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, EntrypointError::Unsupported { line: 6, .. }), "{error:?}");
    assert!(message.contains("parameter `cfg`"), "{message}");
    assert!(message.contains("app.models.Config"), "{message}");
    assert!(message.contains("`parameter_schema`"), "{message}");
}

#[test]
fn computed_default_asks_for_a_configured_schema() {
    let source = "import datetime\nfrom prefect import flow\n\n@flow\ndef etl(day: datetime.date = datetime.date.today()):\n    pass\n";
    let error = read_flow("flows/etl.py", source, "etl").unwrap_err();
    assert!(matches!(error, EntrypointError::Unsupported { ref parameter, .. } if parameter == "day"), "{error:?}");
}

#[test]
fn banned_character_in_name_is_refused_like_prefect() {
    let source = "from prefect import flow\n\n@flow(name=\"etl/daily\")\ndef etl():\n    pass\n";
    let error = read_flow("flows/etl.py", source, "etl").unwrap_err();
    assert!(matches!(error, EntrypointError::Decorator { line: 3, .. }), "{error:?}");
    assert!(error.to_string().contains("`etl/daily`"), "{error}");
}

#[test]
fn last_definition_of_a_name_wins() {
    let source = "from prefect import flow\n\n@flow\ndef etl(a: int):\n    pass\n\ndef etl(b: str):\n    pass\n";
    let error = read_flow("flows/etl.py", source, "etl").unwrap_err();
    assert!(matches!(error, EntrypointError::NotAFlow { .. }), "{error:?}");
}

#[test]
fn a_field_of_an_imported_model_names_its_file_and_line() {
    let files = [
        ("flows/etl.py", "from prefect import flow\nfrom app.models import Config\n\n@flow\ndef etl(\n    cfg: Config,\n):\n    pass\n"),
        ("app/__init__.py", ""),
        ("app/models.py", "import httpx\nfrom pydantic import BaseModel\n\nclass Config(BaseModel):\n    days: int = 1\n    url: httpx.URL\n"),
    ];
    let read = |path: &str| files.iter().find(|(p, _)| *p == path).map(|(_, s)| s.to_string());
    let error = flowgate_entrypoint::read_flow_in(&read, "flows/etl.py", "etl", &[]).unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, EntrypointError::Unsupported { line: 6, .. }), "{error:?}");
    assert!(message.contains("parameter `cfg`"), "{message}");
    assert!(message.contains("httpx.URL"), "{message}");
    assert!(message.contains("`app/models.py`, line 6"), "{message}");
}

#[test]
fn a_missing_entrypoint_file_is_named() {
    let error = flowgate_entrypoint::read_flow_in(&|_| None, "flows/etl.py", "etl", &[]).unwrap_err();
    assert_eq!(error.to_string(), "The entrypoint file `flows/etl.py` is not in the bundle");
}
