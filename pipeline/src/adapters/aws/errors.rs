//! How an SDK error becomes a [`PortError`]: the one place that decides, for every kind of
//! error SQS and DynamoDB return to the adapters, whether a retry can help
//! ([`FailureClass`]). Codes are matched explicitly; anything unknown is transient, since
//! retrying costs little and giving up on something that would have passed loses a message's
//! chance.

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::domain::FailureClass;
use crate::ports::PortError;

/// The request itself can never pass: no retry of it helps.
const PERMANENT: &[&str] = &[
    // DynamoDB: a malformed request or an item over 400 KB ("Item size has exceeded ...").
    "ValidationException",
    // DynamoDB: the first-write-wins condition held against us (a job stored with other
    // content); the adapter names this one itself, see `DynamoDbStore::put_one`.
    "ConditionalCheckFailedException",
    "ItemCollectionSizeLimitExceededException",
    "SerializationException",
    // SQS: a body or attribute it refuses.
    "InvalidMessageContents",
    "InvalidParameterValue",
    "AWS.SimpleQueueService.InvalidParameterValue",
    "MessageTooLong",
    "InvalidAttributeName",
    "InvalidAttributeValue",
    "AWS.SimpleQueueService.BatchEntryIdsNotDistinct",
    "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
];

/// The backend refused the call whatever it carried: the deployment is wrong (a missing
/// resource, a policy, a credential), and every retry passes once it is fixed.
const DEPLOYMENT: &[&str] = &[
    "ResourceNotFoundException",
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "MissingAuthenticationToken",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "KMS.DisabledException",
    "KMS.NotFoundException",
    "KMS.AccessDeniedException",
];

/// Transient, as anything unknown is: listed so that a reader sees they were considered, and
/// a test holds them to it.
#[cfg(test)]
const TRANSIENT: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionConflictException",
    "InternalServerError",
    "InternalFailure",
    "ServiceUnavailable",
    "RequestThrottled",
    "AWS.SimpleQueueService.RequestThrottled",
    "KMS.ThrottlingException",
];

/// The class of an SDK error: by its service code when the service answered, else by how the
/// call failed (a request that could not be built is a deployment matter, such as a missing
/// region; a timeout, a connection error or an unreadable answer are transient).
pub fn class_of<E: ProvideErrorMetadata>(error: &SdkError<E, HttpResponse>) -> FailureClass {
    match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            if PERMANENT.contains(&code) {
                FailureClass::Permanent
            } else if DEPLOYMENT.contains(&code) {
                FailureClass::Deployment
            } else {
                FailureClass::Transient
            }
        }
        SdkError::ConstructionFailure(_) => FailureClass::Deployment,
        _ => FailureClass::Transient,
    }
}

/// The port error for an SDK error, with what was being done.
pub fn port_error<E>(error: SdkError<E, HttpResponse>, doing: &'static str) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let class = class_of(&error);
    PortError::new(
        class,
        anyhow::anyhow!("{doing} failed: {}", DisplayErrorContext(&error)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_sdk_sqs::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_sqs::operation::change_message_visibility_batch::ChangeMessageVisibilityBatchError;
    use aws_sdk_sqs::operation::send_message_batch::SendMessageBatchError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(StatusCode::try_from(status).unwrap(), SdkBody::empty())
    }

    fn put_item(code: &str, status: u16) -> FailureClass {
        let error = PutItemError::generic(ErrorMetadata::builder().code(code).build());
        class_of(&SdkError::service_error(error, response(status)))
    }

    fn sqs_send(code: &str, status: u16) -> FailureClass {
        let error = SendMessageBatchError::generic(ErrorMetadata::builder().code(code).build());
        class_of(&SdkError::service_error(error, response(status)))
    }

    fn sqs_visibility(code: &str) -> FailureClass {
        let error =
            ChangeMessageVisibilityBatchError::generic(ErrorMetadata::builder().code(code).build());
        class_of(&SdkError::service_error(error, response(400)))
    }

    #[test]
    fn every_code_listed_transient_is() {
        for code in TRANSIENT {
            assert_eq!(put_item(code, 400), FailureClass::Transient, "{code}");
        }
    }

    #[test]
    fn dynamodb_throttling_and_server_errors_are_transient() {
        for code in [
            "ThrottlingException",
            "ProvisionedThroughputExceededException",
            "RequestLimitExceeded",
            "TransactionConflictException",
        ] {
            assert_eq!(put_item(code, 400), FailureClass::Transient, "{code}");
        }
        assert_eq!(
            put_item("InternalServerError", 500),
            FailureClass::Transient
        );
        assert_eq!(put_item("ServiceUnavailable", 503), FailureClass::Transient);
    }

    #[test]
    fn dynamodb_validation_and_a_refused_condition_are_permanent() {
        assert_eq!(
            put_item("ValidationException", 400),
            FailureClass::Permanent
        );
        assert_eq!(
            put_item("ConditionalCheckFailedException", 400),
            FailureClass::Permanent
        );
        assert_eq!(
            put_item("ItemCollectionSizeLimitExceededException", 400),
            FailureClass::Permanent
        );
    }

    #[test]
    fn a_missing_table_or_a_denied_call_is_the_deployment() {
        for code in [
            "ResourceNotFoundException",
            "AccessDeniedException",
            "UnrecognizedClientException",
        ] {
            assert_eq!(put_item(code, 400), FailureClass::Deployment, "{code}");
        }
    }

    #[test]
    fn sqs_codes_are_classified_the_same_way() {
        assert_eq!(
            sqs_send("AWS.SimpleQueueService.NonExistentQueue", 400),
            FailureClass::Deployment
        );
        assert_eq!(sqs_send("AccessDenied", 403), FailureClass::Deployment);
        assert_eq!(
            sqs_send("InvalidMessageContents", 400),
            FailureClass::Permanent
        );
        assert_eq!(sqs_send("RequestThrottled", 400), FailureClass::Transient);
        assert_eq!(sqs_send("InternalFailure", 500), FailureClass::Transient);
        assert_eq!(
            sqs_visibility("ReceiptHandleIsInvalid"),
            FailureClass::Transient
        );
    }

    #[test]
    fn timeouts_connection_errors_unreadable_answers_and_unknown_codes_are_transient() {
        let timeout: SdkError<PutItemError, HttpResponse> = SdkError::timeout_error("slow");
        assert_eq!(class_of(&timeout), FailureClass::Transient);
        let refused: SdkError<PutItemError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io("connection refused".into()));
        assert_eq!(class_of(&refused), FailureClass::Transient);
        let garbled: SdkError<PutItemError, HttpResponse> =
            SdkError::response_error("not XML", response(200));
        assert_eq!(class_of(&garbled), FailureClass::Transient);
        assert_eq!(
            put_item("SomethingNewException", 400),
            FailureClass::Transient
        );
        assert_eq!(put_item("", 500), FailureClass::Transient);
    }

    #[test]
    fn a_request_that_cannot_be_built_is_the_deployment() {
        let unbuilt: SdkError<PutItemError, HttpResponse> =
            SdkError::construction_failure("no region");
        assert_eq!(class_of(&unbuilt), FailureClass::Deployment);
    }

    #[test]
    fn the_port_error_keeps_the_class_and_says_what_was_done() {
        let error = PutItemError::generic(
            ErrorMetadata::builder()
                .code("ValidationException")
                .message("Item size has exceeded the maximum allowed size")
                .build(),
        );
        let port = port_error(
            SdkError::service_error(error, response(400)),
            "DynamoDB PutItem",
        );
        assert_eq!(port.class, FailureClass::Permanent);
        let text = port.to_string();
        assert!(text.starts_with("DynamoDB PutItem failed"), "{text}");
        assert!(text.contains("Item size has exceeded"), "{text}");
    }
}
