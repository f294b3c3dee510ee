"""Prints, for each given entrypoint file, what `prefect deploy` derives from every
top-level function by importing it: the flow name, description and
`parameter_schema(flow).model_dump_for_openapi()`; or that it is not a flow."""

import ast
import importlib.util
import json
import sys

from prefect.flows import Flow
from prefect.utilities.callables import parameter_schema

result = {}
for index, path in enumerate(sys.argv[1:]):
    with open(path) as file:
        tree = ast.parse(file.read())
    spec = importlib.util.spec_from_file_location(f"flowgate_fixture_{index}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    functions = {}
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        obj = getattr(module, node.name)
        if isinstance(obj, Flow):
            functions[node.name] = {
                "flow_name": obj.name,
                "description": obj.description,
                "schema": parameter_schema(obj).model_dump_for_openapi(),
            }
        else:
            functions[node.name] = None
    result[path] = functions
json.dump(result, sys.stdout)
