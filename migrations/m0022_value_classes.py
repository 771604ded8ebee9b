"""Value classes (客户价值分类):

- `value_class_rule`: the rules that give the classes (the top N % by profit, sales
  growth above X % over two years, a collection rate below Y %), versioned: every save
  is a new row, the latest holds;
- `customer_value_class`: the classes each customer holds, as last computed, so that
  the customer list filters by them without ranking the book on every page. They are
  computed here under the default rules (20, 30, 60), as models/value_classes.py
  computes them, so that an upgraded database shows them at once.
"""
import peewee as pw


def migrate(db):
    # This step's own snapshot of the tables, never today's models.
    class Base(pw.Model):
        class Meta:
            database = db
            legacy_table_names = False

    class User(Base):
        class Meta:
            table_name = "user"

    class Customer(Base):
        class Meta:
            table_name = "customer"

    class ValueClassRule(Base):
        version = pw.IntegerField(unique=True)
        top_percent = pw.DecimalField(max_digits=5, decimal_places=2)
        growth_percent = pw.DecimalField(max_digits=7, decimal_places=2)
        collection_floor = pw.DecimalField(max_digits=5, decimal_places=2)
        created_by = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
        created_at = pw.DateTimeField()

    class CustomerValueClass(Base):
        customer = pw.ForeignKeyField(Customer, on_delete="CASCADE")
        value_class = pw.CharField(max_length=16)

        class Meta:
            indexes = ((("customer", "value_class"), True), (("value_class", "customer"), False))

    db.create_tables([ValueClassRule, CustomerValueClass])

    # The default rules' classes, from the latest year with sales or profit.
    class CustomerYear(Base):
        customer = pw.ForeignKeyField(Customer)
        year = pw.IntegerField()
        sales = pw.DecimalField(max_digits=16, decimal_places=2)
        profit = pw.DecimalField(max_digits=16, decimal_places=2)
        collection_rate = pw.DecimalField(max_digits=5, decimal_places=2)

        class Meta:
            table_name = "customer_year"

    def has_figures(years):
        return (years.sales != 0) | (years.profit != 0)

    year = CustomerYear.select(pw.fn.MAX(CustomerYear.year)).where(
        has_figures(CustomerYear)).scalar()
    if year is None:
        return
    in_year = (CustomerYear.year == year) & has_figures(CustomerYear)
    fields = [CustomerValueClass.customer, CustomerValueClass.value_class]
    top = -(-CustomerYear.select().where(in_year).count() * 20 // 100)  # 20 %, rounded up
    if top:
        Ranked = CustomerYear.alias()
        cutoff = (Ranked.select(Ranked.profit).where(Ranked.year == year, has_figures(Ranked))
                  .order_by(Ranked.profit.desc()).limit(1).offset(top - 1))
        CustomerValueClass.insert_from(
            CustomerYear.select(CustomerYear.customer, pw.Value("most_valuable"))
            .where(in_year, CustomerYear.profit > 0, CustomerYear.profit >= cutoff),
            fields).execute()
    Before = CustomerYear.alias()
    CustomerValueClass.insert_from(
        CustomerYear.select(CustomerYear.customer, pw.Value("most_growth"))
        .join(Before, on=((Before.customer == CustomerYear.customer)
                          & (Before.year == year - 2)))
        .where(in_year, Before.sales > 0, CustomerYear.sales * 10000 > Before.sales * 13000),
        fields).execute()
    CustomerValueClass.insert_from(
        CustomerYear.select(CustomerYear.customer, pw.Value("negative_value"))
        .where(in_year, (CustomerYear.profit < 0)
               | ((CustomerYear.sales > 0) & (CustomerYear.collection_rate * 100 < 6000))),
        fields).execute()
