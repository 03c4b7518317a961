"""The former home of the Blob connection and error helpers: kept so that existing imports keep
working. Connecting lives in ``dq_stores.blob.client``, error translation in
``dq_stores.blob.errors``.
"""

from dq_stores.blob.client import CONNECTION_STRING_ENV as CONNECTION_STRING_ENV
from dq_stores.blob.client import SCHEME as SCHEME
from dq_stores.blob.client import BlobConnection as BlobConnection
from dq_stores.blob.client import BlobLocation as BlobLocation
from dq_stores.blob.client import check_container_name as check_container_name
from dq_stores.blob.client import connect_container as connect_container
from dq_stores.blob.client import parse_blob_url as parse_blob_url
from dq_stores.blob.errors import azure_errors as azure_errors
from dq_stores.blob.errors import error_code as error_code
from dq_stores.blob.errors import scrub_exception as scrub_exception
from dq_stores.blob.errors import translate_azure_error as translate_azure_error
