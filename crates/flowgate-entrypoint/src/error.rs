//! Why reading an entrypoint failed, in sentences that name the file and function.

/// Everything [`crate::read_flow`] can refuse. Each message names the file (as the
/// caller labelled it) and, where there is one, the function and parameter.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EntrypointError {
    /// The file is not valid Python.
    #[error("Failed to parse `{file}`: syntax error at line {line}, column {column}: {message}")]
    Syntax { file: String, line: usize, column: usize, message: String },
    /// The entrypoint file is not in the bundle.
    #[error("The entrypoint file `{file}` is not in the bundle")]
    FileNotFound { file: String },
    /// No top-level `def` (or `async def`) of that name.
    #[error("Function `{function}` is not defined at the top level of `{file}`")]
    FunctionNotFound { file: String, function: String },
    /// The function exists but does not carry Prefect's `@flow` decorator.
    #[error("Function `{function}` in `{file}` is not decorated with Prefect's `@flow`")]
    NotAFlow { file: String, function: String },
    /// `@flow(...)` was given an argument that Prefect would reject or that cannot
    /// be known without running Python.
    #[error("Invalid `@flow` decorator on `{function}` in `{file}` (line {line}): {reason}")]
    Decorator { file: String, function: String, line: usize, reason: String },
    /// A parameter whose schema depends on something outside this file or on
    /// running code; the user must give `parameter_schema` in `flowgate.toml`.
    #[error(
        "Cannot derive the parameter schema of `{function}` in `{file}` without running Python: \
         parameter `{parameter}` (line {line}) {reason}; set `parameter_schema` for this flow in \
         `flowgate.toml` to override the derived schema"
    )]
    Unsupported { file: String, function: String, parameter: String, line: usize, reason: String },
}
