"""Prints what `prefect deploy` derives from every top-level function of each
entrypoint by importing it: the flow name, description and
`parameter_schema(flow).model_dump_for_openapi()`; or that it is not a flow.

The one argument is a JSON list of projects, each
`{"root": DIR, "python_path": [DIR...], "entrypoints": [PATH...]}` (paths
relative to the root). Each entrypoint is loaded the way Prefect's own loader
does (`load_script_as_module`, working directory = the project root), with the
python path directories on `sys.path`; the result is keyed `ROOT::PATH`."""

import ast
import json
import os
import sys

from prefect.flows import Flow
from prefect.utilities.callables import parameter_schema
from prefect.utilities.importtools import load_script_as_module

result = {}
start_dir = os.getcwd()
for project in json.loads(sys.argv[1]):
    root = os.path.abspath(project["root"])
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)
    os.chdir(root)
    sys.path[:0] = [os.path.join(root, p) for p in project.get("python_path", [])]
    try:
        for entry in project["entrypoints"]:
            path = os.path.join(root, entry)
            with open(path) as file:
                tree = ast.parse(file.read())
            module = load_script_as_module(path)
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
            result[f"{project['root']}::{entry}"] = functions
    finally:
        # Projects may reuse module names (`models`): forget each one's modules.
        for name in set(sys.modules) - saved_modules:
            del sys.modules[name]
        sys.path[:] = saved_path
        os.chdir(start_dir)
json.dump(result, sys.stdout)
