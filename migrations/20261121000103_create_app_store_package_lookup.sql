-- Create app_store_package: the package of an App Store product, on sale or not, for redeeming paid transactions.

-- StoreKit delivers unfinished transactions later (the next app launch, another device): a user
-- who paid while a package was on sale must get its credits even after the package was withdrawn,
-- so this lookup, unlike list_packages, does not filter on `active`. Service role only: the Worker
-- calls it after verifying the signed transaction.
create or replace function public.app_store_package(p_product_id text)
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
  v_package public.credit_packages;
begin
  perform app.require_service_role();
  select * into v_package from public.credit_packages where app_store_product_id = p_product_id;
  if not found then
    raise exception using errcode = 'PT404', message = 'The product is not a credit package.',
      hint = 'unknown_product', detail = 'productId';
  end if;
  return jsonb_build_object('id', v_package.id, 'active', v_package.active);
end;
$$;

comment on function public.app_store_package(text) is 'Service role: the credit package of an App Store product id, whether or not it is still on sale: {"id", "active"}. PT404 unknown_product.';

revoke all on function public.app_store_package(text) from public, anon, authenticated, service_role;
grant execute on function public.app_store_package(text) to service_role;
