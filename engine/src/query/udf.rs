//! SQL helper functions registered in every session: `hex_id(id)` renders a
//! trace, span or parent id as the lowercase hex that Tempo's APIs use.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use arrow::datatypes::DataType;
use datafusion::common::{Result, ScalarValue, exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

/// `hex_id(binary) -> utf8`.
#[derive(Debug, PartialEq, Eq, Hash)]
struct HexId {
    signature: Signature,
}

impl ScalarUDFImpl for HexId {
    fn name(&self) -> &str {
        "hex_id"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        match args {
            [DataType::FixedSizeBinary(_) | DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null] => {
                Ok(DataType::Utf8)
            }
            other => plan_err!("hex_id takes one binary id (trace_id, span_id, parent_span_id), got {other:?}"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else { return exec_err!("hex_id takes one argument") };
        match arg {
            ColumnarValue::Scalar(s) => Ok(ColumnarValue::Scalar(ScalarValue::Utf8(match s {
                ScalarValue::FixedSizeBinary(_, v) | ScalarValue::Binary(v) | ScalarValue::LargeBinary(v) | ScalarValue::BinaryView(v) => {
                    v.as_ref().map(hex::encode)
                }
                _ => None,
            }))),
            ColumnarValue::Array(array) => Ok(ColumnarValue::Array(hex_array(array)?)),
        }
    }
}

fn hex_array(array: &ArrayRef) -> Result<ArrayRef> {
    let mut out = StringBuilder::with_capacity(array.len(), array.len() * 32);
    let value = |i: usize| -> Option<&[u8]> {
        if array.is_null(i) {
            return None;
        }
        Some(match array.data_type() {
            DataType::FixedSizeBinary(_) => array.as_fixed_size_binary().value(i),
            DataType::Binary => array.as_binary::<i32>().value(i),
            DataType::LargeBinary => array.as_binary::<i64>().value(i),
            DataType::BinaryView => array.as_binary_view().value(i),
            _ => return None,
        })
    };
    for i in 0..array.len() {
        out.append_option(value(i).map(hex::encode));
    }
    Ok(Arc::new(out.finish()))
}

/// The helper functions, to register in a session.
pub fn helper_functions() -> Vec<ScalarUDF> {
    vec![ScalarUDF::from(HexId { signature: Signature::any(1, Volatility::Immutable) })]
}
